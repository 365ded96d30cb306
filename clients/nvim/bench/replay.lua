-- Keystroke replay inside Neovim: types a source file into a real buffer,
-- key by key, with the plugin auto-triggering as it would for a user, and
-- measures the time from a keystroke to the first ghost character drawn.
--
-- Run by tests/bench/nvim_keystroke.py, which passes everything through
-- environment variables:
--   WISP_BENCH_CMD     JSON list: the wisp command line
--   WISP_BENCH_DOC     file to type (top to bottom)
--   WISP_BENCH_TAIL    file whose lines stand below the typed text from the start
--   WISP_BENCH_EXTRA   JSON list of files opened and left first (repository context)
--   WISP_BENCH_OUT     where the JSON result goes
--   WISP_BENCH_CPS     typing speed inside a word, characters per second
--   WISP_BENCH_PAUSES  stop after this many pauses (0: the whole file)
--   WISP_BENCH_DEBOUNCE, WISP_BENCH_MAX_TOKENS
-- At every pause (after a word: a space or a line break) the typist waits
-- for the suggestion (at most 5 s) before typing on.
local env = os.getenv
local uv = vim.uv or vim.loop
local cmd = vim.json.decode(env('WISP_BENCH_CMD'))
local doc = table.concat(vim.fn.readfile(env('WISP_BENCH_DOC'), 'b'), '\n')
local tail = vim.fn.readfile(env('WISP_BENCH_TAIL'))
local extra = vim.json.decode(env('WISP_BENCH_EXTRA') or '[]')
local out_path = env('WISP_BENCH_OUT')
local cps = tonumber(env('WISP_BENCH_CPS') or '15')
local max_pauses = tonumber(env('WISP_BENCH_PAUSES') or '0')
local debounce = tonumber(env('WISP_BENCH_DEBOUNCE') or '30')
local max_tokens = tonumber(env('WISP_BENCH_MAX_TOKENS') or '16')

local wisp = require('wisp')
local S = wisp._state
local co

local function resume()
  local ok, err = coroutine.resume(co)
  if not ok then
    local f = io.open(out_path, 'w')
    f:write(vim.json.encode({ error = tostring(err) }))
    f:close()
    vim.cmd('qall!')
  end
end

local function sleep(ms)
  vim.defer_fn(resume, math.max(0, math.floor(ms)))
  coroutine.yield()
end

local function wait_for(cond, timeout_ms)
  local deadline = uv.hrtime() + timeout_ms * 1e6
  while not cond() do
    if uv.hrtime() > deadline then
      return false
    end
    sleep(2)
  end
  return true
end

local log_f = env('WISP_BENCH_LOG') and io.open(env('WISP_BENCH_LOG'), 'w')
local function log(...)
  if log_f then
    log_f:write(string.format(...) .. '\n')
    log_f:flush()
  end
end

local t_shown = nil
vim.api.nvim_create_autocmd('User', {
  pattern = 'WispSuggestionShown',
  callback = function() t_shown = uv.hrtime() end,
})

local function main()
  vim.o.autoindent = false
  vim.o.smartindent = false
  vim.o.cindent = false
  vim.o.indentexpr = ''
  vim.o.expandtab = true
  wisp.setup({
    cmd = cmd, auto_trigger = true, debounce_ms = debounce, max_tokens = max_tokens,
    ring_update_ms = 200,
  })
  wait_for(function() return S.phase == 'ready' or S.phase == 'failed' end, 600000)
  if S.phase ~= 'ready' then
    error('wisp did not become ready: ' .. S.phase .. ': ' .. tostring(S.fail_reason)
      .. (S.server and (' ' .. S.server:stderr_tail(3)) or ''))
  end
  log('ready')
  -- Repository context: the extra files are visited, then left.
  for _, f in ipairs(extra) do
    vim.cmd('edit ' .. vim.fn.fnameescape(f))
    vim.api.nvim_win_set_cursor(0, { math.min(16, vim.api.nvim_buf_line_count(0)), 0 })
    vim.cmd('enew')
  end
  log('visited; ring %s', vim.inspect(wisp.stats().ring))
  wait_for(function() return S.ring and #S.ring.queued == 0 end, 20000)
  log('ring %s', vim.inspect(wisp.stats().ring))
  sleep(3000) -- the warm-up of the ring's prefix
  local buf = vim.api.nvim_get_current_buf()
  vim.api.nvim_buf_set_name(buf, vim.fn.fnamemodify(env('WISP_BENCH_DOC'), ':p'))
  vim.bo[buf].buftype = ''
  vim.bo[buf].swapfile = false
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, vim.list_extend({ '' }, tail))
  vim.api.nvim_win_set_cursor(0, { 1, 0 })
  vim.api.nvim_feedkeys('i', 'n', false)
  wait_for(function() return vim.api.nvim_get_mode().mode == 'i' end, 5000)
  log('typing starts; ring %s', vim.inspect(wisp.stats().ring))
  local st0 = wisp.stats()
  local status0
  wisp.server_status(function(err, r) status0 = r or { error = err } end)
  wait_for(function() return status0 ~= nil end, 10000)
  local t_start = uv.hrtime()

  local samples, kinds, pauses = {}, { request = 0, type_through = 0, none = 0 }, 0
  local interval = cps > 0 and 1000 / cps or 0
  local n = #doc
  local i = 1
  while i <= n do
    local c = doc:sub(i, i)
    local key = c == '\n' and '\r' or c
    -- Multi-byte characters are typed whole.
    local len = 1
    local b = c:byte()
    if b >= 0xF0 then len = 4 elseif b >= 0xE0 then len = 3 elseif b >= 0xC0 then len = 2 end
    if len > 1 then
      key = doc:sub(i, i + len - 1)
    end
    local t_key = uv.hrtime()
    t_shown = nil
    vim.api.nvim_feedkeys(key, 'n', false)
    local is_pause = (c == ' ' or c == '\n') and i > 1 and not doc:sub(i - 1, i - 1):match('%s')
    i = i + len
    if is_pause then
      pauses = pauses + 1
      -- Wait for the ghost, or for wisp to answer with nothing to show.
      sleep(0)
      local shown = wait_for(function()
        if t_shown then
          return true
        end
        local s = S.sugg
        if s and s.visible and s.t_key < t_key then
          return true -- the typed text matched the suggestion already shown
        end
        return uv.hrtime() - t_key > (debounce + 20) * 1e6 and S.sugg == nil
            and (S.server == nil or S.server:in_flight('infill') == 0)
      end, 5000)
      log('pause %d at %d: shown %s kind %s', pauses, i, tostring(shown), t_shown and 'request' or 'other')
      if t_shown then
        samples[#samples + 1] = (t_shown - t_key) / 1e6
        kinds.request = kinds.request + 1
        -- The typist reads the suggestion to its end before typing on, so
        -- the request completes and reports its usage.
        local s = S.sugg
        wait_for(function() return S.sugg ~= s or s.done end, 10000)
      elseif shown and S.sugg and S.sugg.visible then
        kinds.type_through = kinds.type_through + 1
      else
        kinds.none = kinds.none + 1
      end
      if max_pauses > 0 and pauses >= max_pauses then
        break
      end
      sleep(interval)
    else
      sleep(interval)
    end
  end
  local elapsed = (uv.hrtime() - t_start) / 1e9
  wait_for(function() return S.server:in_flight('infill') == 0 end, 30000)
  local st = wisp.stats()
  local status
  wisp.server_status(function(err, r) status = r or { error = err } end)
  wait_for(function() return status ~= nil end, 10000)
  local res = {
    samples_ms = samples, kinds = kinds, pauses = pauses, typed_chars = i - 1, elapsed_s = elapsed,
    requests = st.requests - st0.requests, completed = st.completed - st0.completed,
    superseded = st.superseded - st0.superseded, cancelled = st.cancelled - st0.cancelled,
    errors = st.errors - st0.errors,
    prompt_tokens = st.prompt_tokens - st0.prompt_tokens, cached_tokens = st.cached_tokens - st0.cached_tokens,
    ring = st.ring, server_status = status, server_status_before = status0, nvim = tostring(vim.version().major .. '.' .. vim.version().minor .. '.' .. vim.version().patch),
    debounce_ms = debounce, cps = cps, max_tokens = max_tokens,
  }
  local f = io.open(out_path, 'w')
  f:write(vim.json.encode(res))
  f:close()
  wisp.stop(function() vim.cmd('qall!') end)
  vim.defer_fn(function() vim.cmd('qall!') end, 5000)
end

co = coroutine.create(main)
vim.schedule(resume)
