-- Options of wisp.nvim: the defaults, and the checks setup() runs on what
-- the user passes, so that a misspelt or mistyped option is reported once
-- instead of failing later inside a callback.
local M = {}

M.defaults = {
  -- The wisp binary and its arguments. With `--model PATH` here wisp loads
  -- the model itself at start; with `model` below the plugin loads it over
  -- the protocol (with a progress message).
  cmd = { 'wisp' },
  model = nil, -- path to a GGUF file or Hugging Face directory
  model_params = {}, -- extra model/load params (n_ctx, threads, kv_cache_mb, ...)

  auto_trigger = true, -- request a suggestion while typing in insert mode
  debounce_ms = 30, -- wait this long after the last keystroke before asking
  max_line_suffix = 8, -- auto: skip when more characters than this stand right of the cursor
  filetypes = { ['*'] = true }, -- filetype -> bool; '*' is the default

  n_prefix = 256, -- lines before the cursor line sent as input_prefix
  n_suffix = 64, -- lines after the cursor line sent as input_suffix
  prefix_align = 32, -- the prefix window starts on a multiple of this line (cache-stable)
  max_tokens = 128, -- tokens per suggestion at most
  t_max_predict_ms = 1000, -- after this long since the first token, stop at the next newline
  infill_params = { temperature = 0 }, -- extra infill params (top_k, top_p, seed, stop, ...)

  -- Repository context: chunks of other buffers and yanks, sent as input_extra.
  ring_n_chunks = 16, -- chunks kept (0: off)
  ring_chunk_size = 64, -- lines per chunk at most
  ring_scope = 1024, -- lines around the cursor chunks of the current file come from
  ring_update_ms = 1000, -- how often queued chunks join the ring (while idle)
  ring_evict_similarity = 0.5, -- drop chunks this similar (Dice on lines) to the cursor's context

  keymaps = {
    accept = '<Tab>',
    accept_line = '<S-Tab>',
    accept_word = '<C-B>',
    trigger = '<C-F>', -- request now, or dismiss the suggestion shown
  },

  restart = { max = 5, window_ms = 60000, delay_ms = 300 }, -- restarts of a wisp that died
  request_timeout_ms = 10000, -- health check and status requests
  log_stderr_lines = 50, -- lines of wisp's stderr kept for error messages and :WispStatus
}

local function deep_copy(t)
  return vim.deepcopy(t)
end

-- The expected Lua type of each option; tables are merged one level deep.
local types = {
  cmd = 'table', model = 'string', model_params = 'table', auto_trigger = 'boolean',
  debounce_ms = 'number', max_line_suffix = 'number', filetypes = 'table',
  n_prefix = 'number', n_suffix = 'number', prefix_align = 'number', max_tokens = 'number',
  t_max_predict_ms = 'number', infill_params = 'table', ring_n_chunks = 'number',
  ring_chunk_size = 'number', ring_scope = 'number', ring_update_ms = 'number',
  ring_evict_similarity = 'number', keymaps = 'table', restart = 'table',
  request_timeout_ms = 'number', log_stderr_lines = 'number',
}

-- Returns the merged options, or nil and a message naming the bad option.
function M.build(opts)
  opts = opts or {}
  if type(opts) ~= 'table' then
    return nil, 'setup() takes a table of options'
  end
  local cfg = deep_copy(M.defaults)
  for k, v in pairs(opts) do
    local want = types[k]
    if not want then
      return nil, string.format("unknown option '%s'", tostring(k))
    end
    if type(v) ~= want then
      return nil, string.format("option '%s' must be a %s, not a %s", k, want, type(v))
    end
    if want == 'table' and (k == 'keymaps' or k == 'restart') then
      for kk, vv in pairs(v) do
        cfg[k][kk] = vv
      end
    else
      cfg[k] = deep_copy(v)
    end
  end
  if #cfg.cmd == 0 or type(cfg.cmd[1]) ~= 'string' then
    return nil, "option 'cmd' must be a list: the binary, then its arguments"
  end
  for _, k in ipairs({ 'debounce_ms', 'max_line_suffix', 'n_prefix', 'n_suffix', 'max_tokens',
                       't_max_predict_ms', 'ring_n_chunks', 'ring_chunk_size', 'ring_scope' }) do
    if cfg[k] < 0 then
      return nil, string.format("option '%s' must be >= 0", k)
    end
  end
  if cfg.prefix_align < 1 then
    return nil, "option 'prefix_align' must be >= 1"
  end
  return cfg
end

return M
