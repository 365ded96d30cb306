-- wisp.nvim: fill-in-the-middle code suggestions from a wisp child process.
--
-- The plugin spawns wisp (rpc.lua), asks it for an `infill` at the cursor
-- while the user types (context.lua builds the request, ring.lua adds
-- repository context), and draws the streamed answer as ghost text
-- (ghost.lua). Nothing here waits on wisp: requests are answered through
-- callbacks from the event loop.
local config = require('wisp.config')
local rpc = require('wisp.rpc')
local context = require('wisp.context')
local ring_mod = require('wisp.ring')
local ghost = require('wisp.ghost')
local report = require('wisp.status')

local M = {}
local uv = vim.uv or vim.loop

local S = {
  cfg = nil,
  server = nil, -- rpc object of the running wisp
  phase = 'off', -- off | starting | loading | ready | failed | stopped
  progress = nil, -- percentage of a model load in progress
  init = nil, -- initialize result
  model = nil, -- model/info of the loaded model
  fim = false,
  restarts = {}, -- hrtimes of recent restarts
  sugg = nil, -- the suggestion shown or streaming
  last = nil, -- {buf, tick, row, col}: the insert-mode state last seen
  timer = nil, -- debounce timer
  ring = nil,
  ring_timer = nil,
  t_last_move = 0,
  pending_manual = nil, -- a manual trigger waiting for wisp to be ready
  notified = {}, -- message -> hrtime, to not repeat one error every keystroke
  stats = {
    requests = 0, completed = 0, cancelled = 0, superseded = 0, errors = 0,
    prompt_tokens = 0, cached_tokens = 0, shown = 0, accepted = 0, restarts = 0,
    last = nil, -- the last completed infill: usage, timings, client-side ms
  },
}
M._state = S

local function ms_since(t)
  return (uv.hrtime() - t) / 1e6
end

local function notify(msg, level, key)
  key = key or msg
  local now = uv.hrtime()
  local prev = S.notified[key]
  if prev and now - prev < 10e9 then
    return
  end
  S.notified[key] = now
  vim.schedule(function()
    vim.notify('wisp: ' .. msg, level or vim.log.levels.INFO)
  end)
end

local function in_insert()
  local m = vim.api.nvim_get_mode().mode
  return m:sub(1, 1) == 'i'
end

local function cursor()
  local pos = vim.api.nvim_win_get_cursor(0)
  return pos[1] - 1, pos[2]
end

local function observe()
  local buf = vim.api.nvim_get_current_buf()
  local row, col = cursor()
  S.last = { buf = buf, tick = vim.api.nvim_buf_get_changedtick(buf), row = row, col = col }
end

local function filetype_enabled(buf)
  local ft = vim.bo[buf].filetype
  local v = S.cfg.filetypes[ft]
  if v == nil then
    v = S.cfg.filetypes['*']
  end
  return v ~= false and vim.bo[buf].buftype == '' and vim.bo[buf].modifiable
end

-- ------------------------------------------------------------ the server

local start_server

local function on_exit(server, code)
  if S.server ~= server then
    return
  end
  local was_ready = S.phase == 'ready'
  S.server = nil
  if S.sugg then
    ghost.clear(S.sugg.buf)
    S.sugg = nil
  end
  if S.phase == 'stopped' then
    return
  end
  local tail = server:stderr_tail(5)
  if not was_ready then
    S.phase = 'failed'
    if S.fail_reason then
      return -- already told the user why
    end
    S.fail_reason = string.format('wisp exited with status %d before it was ready%s', code,
      tail ~= '' and (':\n' .. tail) or '')
    notify(S.fail_reason, vim.log.levels.ERROR)
    return
  end
  -- It died while serving: restart it, unless it keeps dying.
  local now = uv.hrtime()
  local recent = {}
  for _, t in ipairs(S.restarts) do
    if now - t < S.cfg.restart.window_ms * 1e6 then
      recent[#recent + 1] = t
    end
  end
  S.restarts = recent
  if #recent >= S.cfg.restart.max then
    S.phase = 'failed'
    notify(string.format('wisp exited (status %d) %d times within %d s; not restarting it again (:WispStart to try)',
      code, #recent, S.cfg.restart.window_ms / 1000), vim.log.levels.ERROR)
    return
  end
  S.restarts[#S.restarts + 1] = now
  S.stats.restarts = S.stats.restarts + 1
  S.phase = 'starting'
  notify(string.format('wisp exited (status %d); restarting it%s', code,
    tail ~= '' and (' (last log: ' .. tail:gsub('\n', ' | ') .. ')') or ''), vim.log.levels.WARN)
  vim.defer_fn(function()
    if S.phase == 'starting' and not S.server then
      start_server()
    end
  end, S.cfg.restart.delay_ms)
end

local function on_notification(method, params)
  if method == '$/progress' then
    local v = rpc.unnil(params.value) or {}
    if v.kind == 'begin' then
      S.progress = 0
      notify('loading the model...', vim.log.levels.INFO, 'progress-begin')
    elseif v.kind == 'report' then
      S.progress = rpc.unnil(v.percentage) or S.progress
    elseif v.kind == 'end' then
      S.progress = nil
    end
    vim.cmd('redrawstatus')
  end
end

local function became_ready(server, model)
  if S.server ~= server then
    return
  end
  S.model = model
  S.fim = model ~= nil and model.tokenizer ~= nil and model.tokenizer.fim == true
  if not model then
    S.phase = 'failed'
    S.fail_reason = 'no model is loaded: pass --model PATH in cmd, or set model in setup()'
    notify(S.fail_reason, vim.log.levels.ERROR)
    return
  end
  if not S.fim then
    S.phase = 'failed'
    S.fail_reason = string.format("the model '%s' has no fill-in-the-middle tokens, so it cannot complete code; use a code model (Qwen2.5-Coder, StarCoder2, DeepSeek-Coder, CodeLlama, ...)",
      tostring(model.name or model.path))
    notify(S.fail_reason, vim.log.levels.ERROR)
    return
  end
  S.phase = 'ready'
  vim.cmd('redrawstatus')
  local p = S.pending_manual
  S.pending_manual = nil
  if p and vim.api.nvim_get_current_buf() == p.buf then
    local row, col = cursor()
    if row == p.row and col == p.col then
      M.suggest()
    end
  end
end

start_server = function()
  if S.server then
    return true
  end
  S.fail_reason = nil
  local server
  server = rpc.new(S.cfg.cmd, {
    on_exit = function(code) on_exit(server, code) end,
    on_notification = on_notification,
    on_protocol_error = function(msg) notify(msg, vim.log.levels.WARN, 'protocol') end,
  }, S.cfg.log_stderr_lines)
  local ok, err = server:start()
  if not ok then
    S.phase = 'failed'
    S.fail_reason = err
    notify(err, vim.log.levels.ERROR)
    return false
  end
  S.server = server
  S.phase = 'starting'
  server:request('initialize', {
    processId = vim.fn.getpid(),
    clientInfo = { name = 'wisp.nvim', version = M.version },
    capabilities = vim.empty_dict(),
  }, function(e, result)
    if e then
      if e.code ~= 'exited' then
        S.fail_reason = e.message
        notify('initialize failed: ' .. tostring(e.message), vim.log.levels.ERROR)
      end
      return
    end
    S.init = result
    local model = rpc.unnil(result.model)
    if S.cfg.model then
      S.phase = 'loading'
      local params = vim.deepcopy(S.cfg.model_params)
      params.path = S.cfg.model
      server:request('model/load', params, function(le, info)
        if le then
          if le.code ~= 'exited' then
            S.phase = 'failed'
            S.fail_reason = le.message
            notify('cannot load the model: ' .. tostring(le.message), vim.log.levels.ERROR)
          end
          return
        end
        notify(string.format('model loaded: %s (%.0f ms)', tostring(info.name or info.path),
          tonumber(info.load_ms) or 0), vim.log.levels.INFO)
        became_ready(server, info)
      end)
    else
      became_ready(server, model)
    end
  end)
  return true
end

-- ------------------------------------------------------------ suggestions

-- The text shown: what the user has not typed or accepted yet, without
-- trailing blank lines.
local function remaining(s)
  local t = s.text:sub(s.consumed + 1)
  while true do
    local n = t:gsub('\n[ \t]*$', '')
    if n == t then
      break
    end
    t = n
  end
  return t
end

local function render()
  local s = S.sugg
  if not s then
    return
  end
  local rest = remaining(s)
  if rest == '' then
    ghost.clear(s.buf)
    s.visible = false
    return
  end
  local row, col = cursor()
  local line = vim.api.nvim_buf_get_lines(s.buf, row, row + 1, false)[1] or ''
  if rest ~= s.drawn then
    s.drawn = rest
    s.updates = (s.updates or 0) + 1
  end
  ghost.show(s.buf, row, col, rest, line:sub(col + 1))
  if not s.visible then
    s.visible = true
    if not s.t_shown then
      s.t_shown = uv.hrtime()
      S.stats.shown = S.stats.shown + 1
      s.show_ms = (s.t_shown - s.t_key) / 1e6
      pcall(vim.api.nvim_exec_autocmds, 'User', { pattern = 'WispSuggestionShown', modeline = false })
    end
  end
end

-- Hides the suggestion; its request, if still running, is cancelled when
-- `cancel` (a cursor move) or left to be superseded by the next request
-- (typing, which sends one).
local function dismiss(cancel)
  local s = S.sugg
  if not s then
    return
  end
  S.sugg = nil
  ghost.clear(s.buf)
  if S.server and s.id then
    if cancel and not s.done then
      S.server:cancel(s.id)
    else
      S.server:forget_streams(s.id)
    end
  end
end

-- True when a finished one-line suggestion only repeats the code already
-- there (the rest of the line, or the next non-blank line): not worth showing.
local function repeats_existing(s)
  local t = remaining(s)
  if t == '' or t:find('\n', 1, true) then
    return false
  end
  if t == s.line_suffix then
    return true
  end
  local n = vim.api.nvim_buf_line_count(s.buf)
  local r = s.row + 1
  while r < n do
    local l = vim.api.nvim_buf_get_lines(s.buf, r, r + 1, false)[1]
    if l:find('%S') then
      local line = vim.api.nvim_buf_get_lines(s.buf, s.row, s.row + 1, false)[1] or ''
      return line:sub(1, s.col) .. t == l
    end
    r = r + 1
  end
  return false
end

local function record_result(result, s)
  local st = S.stats
  st.completed = st.completed + 1
  local u = result.usage or {}
  local t = result.timings or {}
  st.prompt_tokens = st.prompt_tokens + (tonumber(u.prompt_tokens) or 0)
  st.cached_tokens = st.cached_tokens + (tonumber(u.cached_tokens) or 0)
  st.last = {
    prompt_tokens = u.prompt_tokens, cached_tokens = u.cached_tokens,
    completion_tokens = u.completion_tokens,
    ttft_ms = rpc.unnil(t.ttft_ms), decode_tokens_per_s = rpc.unnil(t.decode_tokens_per_s),
    total_ms = rpc.unnil(t.total_ms), finish_reason = result.finish_reason,
    first_piece_ms = s.first_piece_ms, show_ms = s.show_ms,
    prompt_parts = rpc.unnil(result.prompt_parts),
  }
end

local function append_piece(s, text)
  if s.strip > 0 then
    local i = 1
    while s.strip > 0 and i <= #text do
      local c = text:sub(i, i)
      if c ~= ' ' and c ~= '\t' then
        s.strip = 0
        break
      end
      s.strip = s.strip - 1
      i = i + 1
    end
    text = text:sub(i)
    if text ~= '' then
      s.strip = 0
    end
  end
  s.text = s.text .. text
end

-- Once the cursor has moved far (32 lines) from where it last was, the
-- code of the same file just outside the local window (above the prefix,
-- within ring_scope, and below the suffix) is queued for the ring.
local function pick_far(buf, row)
  local last = S.pick_row and S.pick_row[buf]
  if last and math.abs(row - last) <= 32 then
    return
  end
  S.pick_row = S.pick_row or {}
  S.pick_row[buf] = row
  local size, n = S.cfg.ring_chunk_size, vim.api.nvim_buf_line_count(buf)
  local name = context.filename(buf)
  local top = math.max(0, row - S.cfg.n_prefix)
  local lo = math.max(0, row - S.cfg.ring_scope, top - size)
  if top - lo >= 3 then
    S.ring:pick(vim.api.nvim_buf_get_lines(buf, lo, top, false), name)
  end
  local below = math.min(n, row + 1 + S.cfg.n_suffix)
  if n - below >= 3 then
    S.ring:pick(vim.api.nvim_buf_get_lines(buf, below, math.min(n, below + size), false), name)
  end
end

-- Sends an infill for the cursor position. auto: typed (the line-suffix
-- rule applies); t_key: when the keystroke that caused it happened.
local function request(auto, t_key)
  if not S.cfg then
    return
  end
  local buf = vim.api.nvim_get_current_buf()
  if not filetype_enabled(buf) then
    return
  end
  local row, col = cursor()
  if S.phase ~= 'ready' then
    if S.phase == 'failed' and not auto and S.server then
      -- Running but unusable (no model, no FIM tokens): say why again.
      S.notified[S.fail_reason or ''] = nil
      notify(S.fail_reason or 'wisp cannot make suggestions', vim.log.levels.ERROR)
      return
    end
    if S.phase == 'off' or (not auto and (S.phase == 'stopped' or S.phase == 'failed')) then
      start_server()
    end
    if not auto then
      S.pending_manual = { buf = buf, row = row, col = col }
    end
    return
  end
  local ctx = context.build(buf, row, col, S.cfg)
  if auto and #ctx.line_suffix > S.cfg.max_line_suffix then
    return
  end
  dismiss(false)
  if S.ring then
    S.ring:evict_similar(context.around(buf, row, S.cfg.ring_chunk_size))
    pick_far(buf, row)
  end
  local params = vim.deepcopy(S.cfg.infill_params)
  params.input_prefix = ctx.prefix
  params.input_suffix = ctx.suffix
  params.prompt = ctx.prompt
  params.n_indent = ctx.indent
  params.max_tokens = S.cfg.max_tokens
  params.t_max_predict_ms = S.cfg.t_max_predict_ms
  params.filename = context.filename(buf)
  params.supersede = context.uri(buf)
  params.stream = true
  params.input_extra = S.ring and S.ring:extra() or nil
  local s = {
    buf = buf, row = row, col = col, text = '', consumed = 0, done = false,
    strip = ctx.strip, line_suffix = ctx.line_suffix, t_key = t_key or uv.hrtime(), auto = auto,
  }
  S.sugg = s
  S.stats.requests = S.stats.requests + 1
  local server = S.server
  s.id = server:request('infill', params, function(err, result, entry)
    if err then
      if err.code == rpc.CANCELLED then
        if entry.cancelled then
          S.stats.cancelled = S.stats.cancelled + 1
        else
          S.stats.superseded = S.stats.superseded + 1
        end
      elseif err.code ~= 'exited' then
        S.stats.errors = S.stats.errors + 1
        notify('infill failed: ' .. tostring(err.message), vim.log.levels.WARN, 'infill:' .. tostring(err.message))
      end
      if S.sugg == s then
        S.sugg = nil
        ghost.clear(s.buf)
      end
      return
    end
    record_result(result, s)
    if S.sugg ~= s then
      return
    end
    -- The answer carries the whole text; streams add up to a prefix of it.
    local text = result.text or ''
    s.text, s.strip = '', ctx.strip
    append_piece(s, text)
    s.done = true
    s.finish_reason = result.finish_reason
    if repeats_existing(s) then
      s.text = s.text:sub(1, s.consumed)
    end
    if remaining(s) == '' then
      S.sugg = nil
      ghost.clear(s.buf)
      return
    end
    if vim.api.nvim_get_current_buf() == s.buf then
      render()
    end
    S.stats.last.updates = s.updates
  end, function(p)
    if S.sugg ~= s then
      return
    end
    if not s.first_piece_ms then
      s.first_piece_ms = ms_since(s.t_key)
    end
    append_piece(s, p.text or '')
    if vim.api.nvim_get_current_buf() == s.buf then
      render()
    end
  end)
  if not s.id and S.sugg == s then
    S.sugg = nil
  end
end

local function stop_timer()
  if S.timer then
    S.timer:stop()
  end
end

local function schedule_request(t_key)
  stop_timer()
  if S.cfg.debounce_ms <= 0 then
    request(true, t_key)
    return
  end
  if not S.timer then
    S.timer = uv.new_timer()
  end
  S.timer:start(S.cfg.debounce_ms, 0, vim.schedule_wrap(function()
    if in_insert() then
      request(true, t_key)
    end
  end))
end

-- The typed text still agrees with the suggestion: show the rest of it,
-- without a new request. Returns true when it does.
local function type_through(buf, row, col)
  local s = S.sugg
  if not s or s.buf ~= buf then
    return false
  end
  if row < s.row or (row == s.row and col < s.col) or row - s.row > 100 then
    return false
  end
  local ok, typed = pcall(vim.api.nvim_buf_get_text, buf, s.row, s.col, row, col, {})
  if not ok then
    return false
  end
  typed = table.concat(typed, '\n')
  if s.text:sub(1, #typed) ~= typed then
    return false
  end
  s.consumed = #typed
  if s.done and remaining(s) == '' then
    return false
  end
  s.visible = false
  render()
  return true
end

local function on_insert_change()
  if not S.cfg then
    return
  end
  local buf = vim.api.nvim_get_current_buf()
  local tick = vim.api.nvim_buf_get_changedtick(buf)
  local row, col = cursor()
  local last = S.last
  S.last = { buf = buf, tick = tick, row = row, col = col }
  if last and last.buf == buf and last.tick == tick then
    if last.row ~= row or last.col ~= col then
      -- The cursor moved without typing: the suggestion no longer applies.
      stop_timer()
      dismiss(true)
      S.t_last_move = uv.hrtime()
    end
    return
  end
  S.t_last_move = uv.hrtime()
  local t_key = uv.hrtime()
  if type_through(buf, row, col) then
    return
  end
  if S.cfg.auto_trigger then
    dismiss(false)
    schedule_request(t_key)
  else
    dismiss(true)
  end
end

-- ------------------------------------------------------------ accepting

-- Inserts the first n bytes of the suggestion shown at the cursor.
local function insert(n)
  local s = S.sugg
  if not s then
    return false
  end
  local rest = remaining(s)
  local piece = rest:sub(1, n)
  if piece == '' then
    return false
  end
  local row, col = cursor()
  local lines = vim.split(piece, '\n', { plain = true })
  vim.api.nvim_buf_set_text(s.buf, row, col, row, col, lines)
  local nrow = row + #lines - 1
  local ncol = #lines == 1 and (col + #lines[1]) or #lines[#lines]
  vim.api.nvim_win_set_cursor(0, { nrow + 1, ncol })
  s.consumed = s.consumed + #piece
  S.stats.accepted = S.stats.accepted + 1
  observe()
  if remaining(s) == '' and s.done then
    dismiss(false)
    if S.cfg.auto_trigger and in_insert() then
      schedule_request(uv.hrtime())
    end
  else
    s.visible = false
    render()
  end
  return true
end

function M.accept()
  local s = S.sugg
  return s ~= nil and insert(#remaining(s))
end

-- One line: up to the end of the first line; a suggestion that starts with
-- a line break takes the break and the line after it.
function M.accept_line()
  local s = S.sugg
  if not s then
    return false
  end
  local rest = remaining(s)
  local nl = rest:find('\n', 1, true)
  if nl == 1 then
    nl = rest:find('\n', 2, true)
    return insert(nl and nl - 1 or #rest)
  end
  return insert(nl and nl - 1 or #rest)
end

-- One word: the blanks (line breaks included) before it and the run of
-- non-blank characters.
function M.accept_word()
  local s = S.sugg
  if not s then
    return false
  end
  local rest = remaining(s)
  local _, e = rest:find('^%s*[%w_]+')
  if not e then
    _, e = rest:find('^%s*[^%s%w_]+')
  end
  return insert(e or #rest)
end

-- ------------------------------------------------------------ public API

-- The text currently shown as ghost text, or nil.
function M.suggestion()
  local s = S.sugg
  if not s or not s.visible then
    return nil
  end
  local t = remaining(s)
  if t == '' then
    return nil
  end
  return t
end

function M.suggest()
  if not S.cfg then
    notify('call require("wisp").setup() first', vim.log.levels.ERROR)
    return
  end
  stop_timer()
  observe()
  request(false, uv.hrtime())
end

function M.dismiss()
  stop_timer()
  dismiss(true)
end

-- The trigger key: a new suggestion, or hiding the one shown.
function M.toggle()
  if M.suggestion() then
    M.dismiss()
  else
    M.suggest()
  end
end

function M.start()
  if not S.cfg then
    notify('call require("wisp").setup() first', vim.log.levels.ERROR)
    return
  end
  S.restarts = {}
  if S.phase == 'stopped' or S.phase == 'failed' then
    S.phase = 'off'
  end
  start_server()
end

-- Shuts wisp down (no restart until :WispStart or :WispSuggest).
function M.stop(done)
  stop_timer()
  dismiss(true)
  S.phase = 'stopped'
  local server = S.server
  if server then
    server:stop(done)
  elseif done then
    done()
  end
end

-- Counters and the last request's numbers, for tests and :WispStatus.
function M.stats()
  local st = vim.deepcopy(S.stats)
  st.phase = S.phase
  st.pid = S.server and S.server.pid or nil
  st.in_flight = S.server and S.server:in_flight('infill') or 0
  st.ring = S.ring and { chunks = #S.ring.chunks, queued = #S.ring.queued, evicted = S.ring.n_evicted } or nil
  st.cached_share = st.prompt_tokens > 0 and st.cached_tokens / st.prompt_tokens or nil
  return st
end

-- The server's `status` result, asynchronously: cb(err, result).
function M.server_status(cb)
  if not S.server then
    cb({ message = 'wisp is not running' })
    return
  end
  S.server:request('status', nil, function(err, result) cb(err, result) end)
end

-- A statusline component: `%{v:lua.require'wisp'.statusline()}`.
function M.statusline()
  return report.statusline(S)
end

-- Lines describing the plugin's state (the first half of :WispStatus).
function M.status_lines()
  return report.lines(S, M)
end

function M.status()
  report.show(S, M)
end

-- ------------------------------------------------------------ ring

local function pick_around(buf, no_modified)
  if not S.ring or not vim.api.nvim_buf_is_valid(buf) then
    return
  end
  if no_modified then
    local name = vim.api.nvim_buf_get_name(buf)
    if vim.bo[buf].modified or not vim.bo[buf].buflisted or vim.bo[buf].buftype ~= ''
        or name == '' or vim.fn.filereadable(name) ~= 1 then
      return
    end
  end
  local win = vim.fn.bufwinid(buf)
  local row = win ~= -1 and (vim.api.nvim_win_get_cursor(win)[1] - 1) or 0
  S.ring:pick(context.around(buf, row, S.cfg.ring_chunk_size), context.filename(buf))
end

-- Moves a queued chunk into the ring while the user is idle (normal mode,
-- or no keystroke for 3 s), then warms wisp's prefix cache with the new
-- extra context so that the next suggestion finds it computed.
local function ring_tick()
  if not S.ring or S.phase ~= 'ready' or not S.server then
    return
  end
  if in_insert() and ms_since(S.t_last_move) < 3000 then
    return
  end
  if not S.ring:update() then
    return
  end
  local params = {
    input_prefix = '', input_suffix = '', input_extra = S.ring:extra(), max_tokens = 1,
    stream = false, priority = -1,
  }
  S.server:request('infill', params, function() end)
end

-- ------------------------------------------------------------ setup

local function map(key, fn, fallback)
  if not key or key == '' then
    return
  end
  vim.keymap.set('i', key, function()
    if M.suggestion() then
      return '<Cmd>lua require("wisp").' .. fn .. '()<CR>'
    end
    return fallback and key or ''
  end, { expr = true, silent = true, desc = 'wisp: ' .. fn })
end

function M.setup(opts)
  local cfg, err = config.build(opts)
  if not cfg then
    vim.notify('wisp: setup(): ' .. err, vim.log.levels.ERROR)
    return false
  end
  if S.server then
    S.server:stop()
    S.server = nil
  end
  S.cfg = cfg
  S.phase = 'off'
  S.restarts = {}
  S.ring = cfg.ring_n_chunks > 0 and ring_mod.new(cfg) or nil

  vim.api.nvim_set_hl(0, 'WispSuggestion', { link = 'Comment', default = true })
  vim.api.nvim_set_hl(0, 'WispInfo', { link = 'NonText', default = true })

  local cmds = {
    WispSuggest = { M.suggest, 'request a suggestion at the cursor' },
    WispAccept = { M.accept, 'insert the suggestion' },
    WispAcceptLine = { M.accept_line, 'insert the first line of the suggestion' },
    WispAcceptWord = { M.accept_word, 'insert the first word of the suggestion' },
    WispDismiss = { M.dismiss, 'hide the suggestion' },
    WispStatus = { M.status, "the plugin's and the server's state" },
    WispStop = { function() M.stop() end, 'shut wisp down' },
    WispStart = { M.start, 'start wisp' },
  }
  for name, c in pairs(cmds) do
    vim.api.nvim_create_user_command(name, function() c[1]() end, { desc = 'wisp: ' .. c[2], force = true })
  end

  local km = cfg.keymaps
  map(km.accept, 'accept', true)
  map(km.accept_line, 'accept_line', true)
  map(km.accept_word, 'accept_word', true)
  if km.trigger and km.trigger ~= '' then
    vim.keymap.set('i', km.trigger, function() M.toggle() end, { silent = true, desc = 'wisp: suggest / dismiss' })
  end

  local group = vim.api.nvim_create_augroup('wisp', { clear = true })
  local function au(ev, fn, pattern)
    vim.api.nvim_create_autocmd(ev, { group = group, pattern = pattern, callback = function(a)
      local ok, e = xpcall(fn, debug.traceback, a)
      if not ok then
        notify('internal error: ' .. tostring(e), vim.log.levels.ERROR, 'internal')
      end
    end })
  end
  au('InsertEnter', function()
    observe()
    if cfg.auto_trigger then
      vim.schedule(function()
        if in_insert() then
          observe()
          schedule_request(uv.hrtime())
        end
      end)
    end
  end)
  au({ 'CursorMovedI', 'TextChangedI' }, on_insert_change)
  au({ 'InsertLeave', 'CompleteChanged', 'BufLeave' }, function()
    stop_timer()
    dismiss(true)
  end)
  au('CursorMoved', function()
    if S.sugg then
      dismiss(true)
    end
  end)
  au('BufLeave', function(a) pick_around(a.buf, true) end)
  au('BufWritePost', function(a) pick_around(a.buf, true) end)
  au('BufEnter', function(a)
    -- A buffer left again within the delay was picked by BufLeave, around
    -- its cursor; picking it now would take its first lines instead.
    vim.defer_fn(function()
      if vim.api.nvim_get_current_buf() == a.buf then
        pick_around(a.buf, true)
      end
    end, 100)
  end)
  au('TextYankPost', function()
    local ev = vim.v.event
    if S.ring and ev.operator == 'y' then
      S.ring:pick(ev.regcontents, context.filename(vim.api.nvim_get_current_buf()))
    end
  end)
  au('VimLeavePre', function()
    S.phase = 'stopped'
    if S.server then
      S.server:stop_now()
    end
  end)

  if S.ring_timer then
    S.ring_timer:stop()
  end
  if S.ring then
    S.ring_timer = uv.new_timer()
    S.ring_timer:start(cfg.ring_update_ms, cfg.ring_update_ms, vim.schedule_wrap(function()
      local ok, e = xpcall(ring_tick, debug.traceback)
      if not ok then
        notify('internal error: ' .. tostring(e), vim.log.levels.ERROR, 'internal')
      end
    end))
  end

  start_server()
  return true
end

M.version = '0.1.0'
return M
