-- The local context of an infill request: the code around the cursor, split
-- the way wisp's prompt cache likes it.
local M = {}

-- Returns the request parts for the cursor at (row, col) (0-based row, byte
-- column) of buf:
--   prefix  whole lines before the cursor line, from a start line snapped
--           down to a multiple of cfg.prefix_align so that it stays the same
--           (and cached) while the cursor moves down through the file;
--   prompt  the cursor line up to the cursor (wisp places it after the FIM
--           middle token, so typing on the line leaves the rest cached);
--   suffix  the rest of the cursor line and cfg.n_suffix lines after it;
--   indent  n_indent: the cursor line's indentation (0 on a blank line);
--   strip   on a line holding only whitespace the prompt is left empty (a
--           prompt ending in spaces makes models continue oddly) and up to
--           this many leading blanks of the completion are dropped instead;
--   line_suffix  text right of the cursor.
function M.build(buf, row, col, cfg)
  local n = vim.api.nvim_buf_line_count(buf)
  local line = vim.api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ''
  local before, after = line:sub(1, col), line:sub(col + 1)
  local start = math.max(0, row - cfg.n_prefix)
  start = start - start % cfg.prefix_align
  local pre = vim.api.nvim_buf_get_lines(buf, start, row, false)
  local post = vim.api.nvim_buf_get_lines(buf, row + 1, math.min(n, row + 1 + cfg.n_suffix), false)
  local ctx = {
    prefix = #pre > 0 and (table.concat(pre, '\n') .. '\n') or '',
    suffix = after .. '\n' .. (#post > 0 and (table.concat(post, '\n') .. '\n') or ''),
    prompt = before,
    indent = #before:match('^[ \t]*'),
    strip = 0,
    line_suffix = after,
  }
  if line:match('^[ \t]*$') then
    ctx.prompt = ''
    ctx.indent = 0
    ctx.strip = #before
    ctx.suffix = '\n' .. (#post > 0 and (table.concat(post, '\n') .. '\n') or '')
  end
  return ctx
end

-- The lines around the cursor (a chunk of `size` lines) that the ring's
-- chunks are compared with.
function M.around(buf, row, size)
  local n = vim.api.nvim_buf_line_count(buf)
  local half = math.floor(size / 2)
  local s = math.max(0, row - half)
  return vim.api.nvim_buf_get_lines(buf, s, math.min(n, s + size), false)
end

-- A name for the file, relative to the working directory.
function M.filename(buf)
  local name = vim.api.nvim_buf_get_name(buf)
  if name == '' then
    return 'untitled'
  end
  return vim.fn.fnamemodify(name, ':.')
end

-- The supersede key: the buffer's URI, so that one document's newer request
-- cancels its older one and other documents are left alone.
function M.uri(buf)
  local name = vim.api.nvim_buf_get_name(buf)
  if name == '' then
    return 'untitled:' .. buf
  end
  return vim.uri_from_fname(vim.fn.fnamemodify(name, ':p'))
end

return M
