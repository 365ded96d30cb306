-- A tiny test runner for headless Neovim: a test is a Lua function run in a
-- coroutine, so that it can wait (T.sleep, T.wait_for) while the editor's
-- event loop goes on processing typed keys, timers and wisp's output. Results
-- go to $WISP_TEST_OUT as one JSON object per line, then Neovim quits.
local T = {}

T.bin = os.getenv('WISP_BIN') or 'build/wisp'
T.model = os.getenv('WISP_FIM_MODEL') or '../shared/golden/syn-qwen2-dsc-q8_0.gguf'
-- A model without FIM tokens (the repository's bundled stories260K).
T.stories = os.getenv('WISP_NOFIM_MODEL')
  or (vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h:h:h:h') .. '/models/stories260K.gguf')
local out_path = os.getenv('WISP_TEST_OUT') or 'wisp-nvim-test.jsonl'
local out = assert(io.open(out_path, 'w'))
local co

local function emit(obj)
  out:write(vim.json.encode(obj) .. '\n')
  out:flush()
end

function T.log(msg)
  emit({ log = msg })
end

-- Records one check; a failed check ends the test.
function T.check(name, cond, detail)
  emit({ check = name, ok = cond and true or false, detail = detail and vim.inspect(detail) or nil })
  if not cond then
    error('check failed: ' .. name .. (detail and (': ' .. vim.inspect(detail)) or ''), 0)
  end
end

function T.eq(name, got, want)
  T.check(name, vim.deep_equal(got, want), not vim.deep_equal(got, want) and { got = got, want = want } or nil)
end

local function resume(...)
  local ok, err = coroutine.resume(co, ...)
  if not ok then
    emit({ error = tostring(err) })
    T.finish()
  end
end

function T.sleep(ms)
  vim.defer_fn(function() resume() end, ms)
  coroutine.yield()
end

-- Waits until cond() is true (polled every 5 ms); fails after timeout_ms.
function T.wait_for(what, cond, timeout_ms)
  local deadline = vim.loop.hrtime() + (timeout_ms or 15000) * 1e6
  while true do
    local ok, v = pcall(cond)
    if ok and v then
      return v
    end
    if vim.loop.hrtime() > deadline then
      T.check('wait for ' .. what, false, ok and 'timed out' or v)
    end
    T.sleep(5)
  end
end

-- Types keys as if from the keyboard (mappings apply).
function T.feed(keys)
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes(keys, true, false, true), 'mt', false)
end

-- Calls an async API taking a callback; returns what the callback got.
function T.await(fn, ...)
  local args = { ... }
  local got
  args[#args + 1] = function(...) got = { ... } end
  fn(unpack(args))
  T.wait_for('callback', function() return got end)
  return unpack(got)
end

function T.server_status()
  local err, r = T.await(require('wisp').server_status)
  T.check('server status answers', err == nil, err)
  return r
end

-- Messages Neovim showed that look like Lua errors.
function T.lua_errors()
  local msgs = vim.fn.execute('messages')
  local bad = {}
  for line in msgs:gmatch('[^\n]+') do
    if line:find('E5108') or line:find('stack traceback') or line:find('E5113') or line:find('E5560')
        or line:find('Error executing') or line:find('attempt to') then
      bad[#bad + 1] = line
    end
  end
  return bad, msgs
end

-- Captures vim.notify calls (they are also left for :messages).
T.notes = {}
local orig_notify = vim.notify
vim.notify = function(msg, level, opts)
  T.notes[#T.notes + 1] = { msg = msg, level = level }
  emit({ notify = msg, level = level })
  return orig_notify(msg, level, opts)
end

function T.finish()
  local bad, msgs = T.lua_errors()
  emit({ check = 'no Lua error in :messages', ok = #bad == 0, detail = #bad > 0 and msgs or nil })
  emit({ done = true })
  out:close()
  vim.schedule(function()
    pcall(function() require('wisp').stop() end)
    vim.defer_fn(function() vim.cmd('qall!') end, 50)
  end)
end

-- Runs the test function; the script must end right after calling this.
function T.run(fn)
  co = coroutine.create(function()
    fn()
    T.finish()
  end)
  vim.schedule(function() resume() end)
end

-- A scratch buffer holding `lines`, in the current window.
function T.buffer(lines, name)
  vim.cmd('enew!')
  local buf = vim.api.nvim_get_current_buf()
  if name then
    vim.api.nvim_buf_set_name(buf, name)
  end
  vim.bo[buf].swapfile = false
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  return buf
end

-- Enters insert mode with the cursor at (row 1-based, col 0-based byte).
function T.insert_at(row, col)
  vim.api.nvim_win_set_cursor(0, { row, col })
  local line = vim.api.nvim_buf_get_lines(0, row - 1, row, false)[1]
  if col >= #line then
    T.feed('A')
  else
    T.feed('i')
  end
  T.wait_for('insert mode', function() return vim.api.nvim_get_mode().mode == 'i' end)
  vim.api.nvim_win_set_cursor(0, { row, col })
end

function T.wisp()
  return require('wisp')
end

function T.ready()
  T.wait_for('wisp ready', function() return require('wisp').stats().phase == 'ready' end, 30000)
end

-- The ghost extmarks of buf in namespace `wisp`.
function T.extmarks(buf)
  local ns = vim.api.nvim_get_namespaces()['wisp']
  if not ns then
    return {}
  end
  return vim.api.nvim_buf_get_extmarks(buf, ns, 0, -1, { details = true })
end

return T
