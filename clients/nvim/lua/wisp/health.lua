-- :checkhealth wisp - the binary, its version, whether the configured model
-- loads, and whether it can fill in the middle. The checks run a separate,
-- short-lived wisp with the configured command (the editor waits for it:
-- :checkhealth is a command the user asked to wait for).
local M = {}

-- Neovim 0.10 renamed the report functions; 0.7 has them in require('health').
local h = vim.health or {}
if not h.start then
  local ok, old = pcall(require, 'health')
  old = ok and old or {}
  h = {
    start = h.report_start or old.report_start,
    ok = h.report_ok or old.report_ok,
    info = h.report_info or old.report_info,
    warn = h.report_warn or old.report_warn,
    error = h.report_error or old.report_error,
  }
end

local function unnil(v)
  if v == vim.NIL then
    return nil
  end
  return v
end

-- Runs cmd with `input` on stdin (then EOF); returns the decoded messages
-- by id, stderr, the exit status, and whether it timed out.
local function converse(cmd, requests, timeout_ms)
  local out, err = { '' }, { '' }
  local function collect(buf, data)
    buf[#buf] = buf[#buf] .. data[1]
    for i = 2, #data do
      buf[#buf + 1] = data[i]
    end
  end
  local ok, job = pcall(vim.fn.jobstart, cmd, {
    on_stdout = function(_, d) collect(out, d) end,
    on_stderr = function(_, d) collect(err, d) end,
  })
  if not ok or job <= 0 then
    return nil, 'cannot start: ' .. tostring(job)
  end
  local lines = {}
  for _, r in ipairs(requests) do
    lines[#lines + 1] = vim.json.encode(r)
  end
  vim.fn.chansend(job, table.concat(lines, '\n') .. '\n')
  vim.fn.chanclose(job, 'stdin')
  local rc = vim.fn.jobwait({ job }, timeout_ms)[1]
  if rc == -1 then
    vim.fn.jobstop(job)
  end
  local by_id = {}
  for _, l in ipairs(out) do
    if l:find('%S') then
      local dok, msg = pcall(vim.json.decode, l)
      if dok and type(msg) == 'table' and unnil(msg.id) ~= nil then
        by_id[msg.id] = msg
      end
    end
  end
  return { by_id = by_id, stderr = vim.trim(table.concat(err, '\n')), rc = rc, timed_out = rc == -1 }
end

function M.check()
  local wisp = require('wisp')
  local cfg = wisp._state.cfg
  h.start('wisp.nvim')
  if not cfg then
    h.warn('setup() has not been called; checking the default command', { "require('wisp').setup({ cmd = { 'wisp', '--model', '/path/to/code-model.gguf' } })" })
    cfg = require('wisp.config').build({})
  else
    h.ok('setup() done; command: ' .. table.concat(cfg.cmd, ' '))
  end
  if vim.fn.has('nvim-0.10') == 1 then
    h.ok('Neovim ' .. tostring(vim.version()) .. ': inline ghost text')
  else
    local v = vim.version()
    h.ok(string.format('Neovim %d.%d.%d: ghost text as overlay + virtual lines (inline needs 0.10)', v.major, v.minor, v.patch))
  end

  local bin = cfg.cmd[1]
  if vim.fn.executable(bin) ~= 1 then
    h.error(string.format("wisp binary '%s' not found or not executable", bin),
      { 'build wisp (make) and set cmd = { "/path/to/wisp", "--model", "model.gguf" } in setup()' })
    return
  end
  h.ok('binary: ' .. vim.fn.exepath(bin))

  local out = vim.fn.system({ bin, '--version' })
  if vim.v.shell_error == 0 then
    h.ok('version: ' .. vim.trim(out))
  else
    h.error(string.format("'%s --version' failed (status %d): %s", bin, vim.v.shell_error, vim.trim(out)))
  end

  local reqs = {
    { jsonrpc = '2.0', id = 1, method = 'initialize', params = { processId = vim.fn.getpid(), clientInfo = { name = 'wisp.nvim-health' }, capabilities = vim.empty_dict() } },
  }
  if cfg.model then
    local p = vim.deepcopy(cfg.model_params)
    p.path = cfg.model
    reqs[#reqs + 1] = { jsonrpc = '2.0', id = 2, method = 'model/load', params = p }
  end
  reqs[#reqs + 1] = { jsonrpc = '2.0', id = 3, method = 'model/info' }
  local r, e = converse(cfg.cmd, reqs, 120000)
  if not r then
    h.error('cannot run ' .. table.concat(cfg.cmd, ' ') .. ': ' .. tostring(e))
    return
  end
  if r.timed_out then
    h.error('wisp did not answer within 120 s: ' .. table.concat(cfg.cmd, ' '))
    return
  end
  local init = r.by_id[1]
  if not init or not unnil(init.result) then
    local last = r.stderr:match('([^\n]*)$') or ''
    h.error(string.format('the model does not load: wisp exited with status %d%s', r.rc,
      last ~= '' and (': ' .. last) or ''), { 'check the --model path in cmd (or model) and that the file is a GGUF / Hugging Face model' })
    return
  end
  local si = unnil(init.result.serverInfo) or {}
  h.ok(string.format('wisp answers initialize: %s %s, protocol %s', tostring(si.name), tostring(si.version), tostring(init.result.protocolVersion)))
  if cfg.model then
    local ld = r.by_id[2]
    if not ld or unnil(ld.error) then
      h.error('model/load ' .. cfg.model .. ' failed: ' .. tostring(ld and ld.error.message or r.stderr))
      return
    end
  end
  local info = r.by_id[3]
  if not info or unnil(info.error) then
    h.error('no model is loaded: ' .. tostring(info and info.error.message or 'no answer'),
      { 'pass --model PATH in cmd, or set model in setup()' })
    return
  end
  local m = info.result
  h.ok(string.format('model loads: %s (%s, %s, %s parameters, context %s, on %s, %.0f ms)', tostring(unnil(m.name)),
    tostring(m.path), tostring(m.architecture), tostring(m.n_params), tostring(m.n_ctx), tostring(m.device),
    tonumber(m.load_ms) or 0))
  local tk = unnil(m.tokenizer) or {}
  if tk.fim == true then
    local sp = unnil(tk.special) or {}
    h.ok(string.format('fill-in-the-middle: supported (prefix %s, suffix %s, middle %s)', tostring(unnil(sp.fim_prefix)),
      tostring(unnil(sp.fim_suffix)), tostring(unnil(sp.fim_middle))))
  else
    h.error('fill-in-the-middle: the model has no FIM tokens, infill cannot work',
      { 'use a code model with FIM tokens: Qwen2.5-Coder, StarCoder2, DeepSeek-Coder, CodeLlama, ...' })
  end

  local st = wisp.stats()
  if st.pid then
    h.info(string.format('the plugin\'s wisp: pid %d, %s; %d requests, %d completed', st.pid, st.phase, st.requests, st.completed))
  else
    h.info('the plugin\'s wisp is not running (' .. st.phase .. ')')
  end
end

return M
