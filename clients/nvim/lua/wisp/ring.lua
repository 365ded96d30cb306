-- Repository context: a ring of text chunks from other places (buffers the
-- user entered, left or saved, text they yanked, distant parts of the
-- current file), sent with every infill as input_extra. The ring changes
-- only while the user is idle, and only at its end, so the extra part of the
-- prompt stays a stable prefix that wisp's prefix cache serves.
local M = {}
M.__index = M

function M.new(cfg)
  local self = setmetatable({}, M)
  self.cfg = cfg
  self.chunks = {} -- {lines, text, filename}; sent in this order
  self.queued = {}
  self.n_evicted = 0
  self.max_queued = 16
  return self
end

-- Dice similarity of two chunks as lists of lines: 2 * |lines of a found in
-- b| / (|a| + |b|); 0 for nothing in common, 1 for the same lines.
function M.similarity(a, b)
  if #a + #b == 0 then
    return 1
  end
  local set = {}
  for _, l in ipairs(b) do
    set[l] = true
  end
  local common = 0
  for _, l in ipairs(a) do
    if set[l] then
      common = common + 1
    end
  end
  return 2 * common / (#a + #b)
end

local function same(a, b)
  if #a ~= #b then
    return false
  end
  for i = 1, #a do
    if a[i] ~= b[i] then
      return false
    end
  end
  return true
end

-- Queues a chunk of `lines` (at most ring_chunk_size of them) from
-- `filename`. A chunk that repeats one already held is ignored; held chunks
-- nearly the same as the new one (an older view of the same code) are
-- dropped in its favour.
function M:pick(lines, filename)
  local size = self.cfg.ring_chunk_size
  if self.cfg.ring_n_chunks <= 0 or size <= 0 or #lines < 3 then
    return false
  end
  if #lines > size then
    lines = vim.list_slice(lines, 1, size)
  end
  for _, list in ipairs({ self.chunks, self.queued }) do
    for _, c in ipairs(list) do
      if same(c.lines, lines) then
        return false
      end
    end
  end
  for _, list in ipairs({ self.queued, self.chunks }) do
    for i = #list, 1, -1 do
      if M.similarity(list[i].lines, lines) > 0.9 then
        table.remove(list, i)
        self.n_evicted = self.n_evicted + 1
      end
    end
  end
  if #self.queued >= self.max_queued then
    table.remove(self.queued, 1)
  end
  self.queued[#self.queued + 1] = {
    lines = lines,
    text = table.concat(lines, '\n') .. '\n',
    filename = filename ~= '' and filename or nil,
  }
  return true
end

-- Moves the oldest queued chunk into the ring (the oldest chunk of a full
-- ring leaves). Returns true when the ring changed.
function M:update()
  if #self.queued == 0 or self.cfg.ring_n_chunks <= 0 then
    return false
  end
  while #self.chunks >= self.cfg.ring_n_chunks do
    table.remove(self.chunks, 1)
  end
  self.chunks[#self.chunks + 1] = table.remove(self.queued, 1)
  return true
end

-- Drops ring chunks too similar to the code around the cursor: the local
-- context already carries that code, and a second copy makes the model
-- repeat it. Queued chunks go too, or the next update would bring such a
-- copy straight back. Returns the number dropped.
function M:evict_similar(lines)
  local n = 0
  for _, list in ipairs({ self.chunks, self.queued }) do
    for i = #list, 1, -1 do
      if M.similarity(list[i].lines, lines) > self.cfg.ring_evict_similarity then
        table.remove(list, i)
        n = n + 1
      end
    end
  end
  self.n_evicted = self.n_evicted + n
  return n
end

-- input_extra for infill: a list of {filename, text}, or nil when empty.
function M:extra()
  if #self.chunks == 0 then
    return nil
  end
  local out = {}
  for _, c in ipairs(self.chunks) do
    out[#out + 1] = { filename = c.filename, text = c.text }
  end
  return out
end

return M
