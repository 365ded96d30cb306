-- One wisp child process and the JSON-RPC 2.0 conversation with it, over
-- ndjson on its stdin/stdout. Everything is asynchronous: requests return an
-- id at once and their callbacks run from the event loop when the answer
-- arrives; stderr is always drained (a full stderr pipe would stall wisp).
local M = {}
M.__index = M

local CANCELLED = -32800

-- A decoded JSON null is vim.NIL; callers get nil instead.
local function unnil(v)
  if v == vim.NIL then
    return nil
  end
  return v
end
M.unnil = unnil

-- handlers: on_exit(code, signal), on_notification(method, params),
-- on_protocol_error(message) (output that is not JSON-RPC).
function M.new(cmd, handlers, stderr_lines)
  local self = setmetatable({}, M)
  self.cmd = cmd
  self.handlers = handlers or {}
  self.job = nil
  self.pid = nil
  self.partial = ''
  self.pending = {} -- id -> {method, cb, on_stream, cancelled, t_sent}
  self.next_id = 1
  self.stderr = {}
  self.stderr_partial = ''
  self.stderr_max = stderr_lines or 50
  self.exited = false
  return self
end

function M:stderr_tail(n)
  n = n or self.stderr_max
  local out = {}
  for i = math.max(1, #self.stderr - n + 1), #self.stderr do
    out[#out + 1] = self.stderr[i]
  end
  if self.stderr_partial ~= '' then
    out[#out + 1] = self.stderr_partial
  end
  return table.concat(out, '\n')
end

function M:_stderr(data)
  -- jobstart splits on newlines: the first item continues the last partial
  -- line, the last item is the start of the next one.
  for i, piece in ipairs(data) do
    if i == 1 then
      self.stderr_partial = self.stderr_partial .. piece
    else
      local line = self.stderr_partial:gsub('\r$', '')
      if line ~= '' then
        self.stderr[#self.stderr + 1] = line
        if #self.stderr > self.stderr_max then
          table.remove(self.stderr, 1)
        end
      end
      self.stderr_partial = piece
    end
  end
end

function M:_dispatch(msg)
  if type(msg) ~= 'table' then
    return
  end
  if msg[1] ~= nil then -- a batch answer; this client sends no batches, but be lenient
    for _, m in ipairs(msg) do
      self:_dispatch(m)
    end
    return
  end
  local method = unnil(msg.method)
  if method then
    local params = unnil(msg.params) or {}
    if method == '$/stream' then
      local p = self.pending[params.id]
      if p and p.on_stream then
        p.on_stream(params)
      end
    elseif self.handlers.on_notification then
      self.handlers.on_notification(method, params)
    end
    return
  end
  local id = unnil(msg.id)
  local p = id ~= nil and self.pending[id]
  if not p then
    return -- an answer to a request this client gave up on, or an id-less error
  end
  self.pending[id] = nil
  if p.cb then
    local err = unnil(msg.error)
    if err then
      err.data = unnil(err.data)
      p.cb(err, nil, p)
    else
      p.cb(nil, unnil(msg.result), p)
    end
  end
end

function M:_stdout(data)
  for i, piece in ipairs(data) do
    if i == 1 then
      self.partial = self.partial .. piece
    else
      local line = self.partial
      self.partial = piece
      if line:find('%S') then
        local ok, msg = pcall(vim.json.decode, line)
        if ok then
          local ok2, err = xpcall(function() self:_dispatch(msg) end, debug.traceback)
          if not ok2 and self.handlers.on_protocol_error then
            self.handlers.on_protocol_error('internal error handling a message: ' .. tostring(err))
          end
        elseif self.handlers.on_protocol_error then
          self.handlers.on_protocol_error('wisp wrote a line that is not JSON: ' .. line:sub(1, 200))
        end
      end
    end
  end
end

-- Starts the process. Returns true, or nil and a message.
function M:start()
  local bin = self.cmd[1]
  if vim.fn.executable(bin) ~= 1 then
    return nil, string.format("wisp binary '%s' not found or not executable (set cmd in setup())", bin)
  end
  local ok, job = pcall(vim.fn.jobstart, self.cmd, {
    on_stdout = function(_, data) self:_stdout(data) end,
    on_stderr = function(_, data) self:_stderr(data) end,
    on_exit = function(_, code, event) self:_exit(code) end,
    stdout_buffered = false,
    stderr_buffered = false,
  })
  if not ok or type(job) ~= 'number' or job <= 0 then
    return nil, string.format("cannot start '%s': %s", bin, ok and tostring(job) or tostring(job))
  end
  self.job = job
  self.pid = vim.fn.jobpid(job)
  return true
end

function M:_exit(code)
  self.exited = true
  self.job = nil
  -- Flush a last line that had no newline.
  if self.partial ~= '' then
    self:_stdout({ '', '' })
  end
  if self.stderr_partial ~= '' then
    self:_stderr({ '', '' })
  end
  local pending = self.pending
  self.pending = {}
  for _, p in pairs(pending) do
    if p.cb then
      p.cb({ code = 'exited', message = 'wisp exited before answering' }, nil, p)
    end
  end
  if self.handlers.on_exit then
    self.handlers.on_exit(code)
  end
end

function M:alive()
  return self.job ~= nil and not self.exited
end

function M:_send(obj)
  if not self:alive() then
    return false
  end
  local ok = pcall(vim.fn.chansend, self.job, vim.json.encode(obj) .. '\n')
  return ok
end

-- Sends a request; cb(err, result, entry) runs with its answer, on_stream
-- with each $/stream notification for it. Returns the id, or nil when wisp
-- is not running (cb is then called at once with an error).
function M:request(method, params, cb, on_stream)
  local id = self.next_id
  self.next_id = id + 1
  local entry = { id = id, method = method, cb = cb, on_stream = on_stream, t_sent = (vim.uv or vim.loop).hrtime() }
  self.pending[id] = entry
  local msg = { jsonrpc = '2.0', id = id, method = method }
  if params ~= nil then
    msg.params = params
  end
  if not self:_send(msg) then
    self.pending[id] = nil
    if cb then
      cb({ code = 'exited', message = 'wisp is not running' }, nil, entry)
    end
    return nil
  end
  return id
end

function M:notify(method, params)
  local msg = { jsonrpc = '2.0', method = method }
  if params ~= nil then
    msg.params = params
  end
  return self:_send(msg)
end

-- Asks wisp to stop request id; it is still answered (-32800 or its result).
-- Its streams are dropped from now on.
function M:cancel(id)
  local p = id and self.pending[id]
  if not p then
    return false
  end
  p.cancelled = true
  p.on_stream = nil
  self:notify('$/cancelRequest', { id = id })
  return true
end

-- Stops listening to a request's streams (its answer still arrives).
function M:forget_streams(id)
  local p = id and self.pending[id]
  if p then
    p.on_stream = nil
  end
end

function M:in_flight(method)
  local n = 0
  for _, p in pairs(self.pending) do
    if method == nil or p.method == method then
      n = n + 1
    end
  end
  return n
end

-- The LSP-style end: shutdown, then exit; then closes stdin so that a wisp
-- that did not answer still ends at EOF.
function M:stop(done)
  if not self:alive() then
    if done then
      done()
    end
    return
  end
  for id in pairs(self.pending) do
    self:cancel(id)
  end
  local job = self.job
  self:request('shutdown', nil, function()
    self:notify('exit')
    pcall(vim.fn.chanclose, job, 'stdin')
    if done then
      done()
    end
  end)
end

-- For VimLeavePre: no waiting on answers, the editor is going away.
function M:stop_now()
  if not self:alive() then
    return
  end
  for id in pairs(self.pending) do
    self:cancel(id)
  end
  self:request('shutdown', nil, nil)
  self:notify('exit')
  pcall(vim.fn.chanclose, self.job, 'stdin')
end

M.CANCELLED = CANCELLED
return M
