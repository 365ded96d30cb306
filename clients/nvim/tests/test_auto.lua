-- Auto-trigger while typing: each keystroke's request supersedes the one
-- before it on the server (its `status` counts them cancelled, though the
-- plugin never sent $/cancelRequest), the last one is shown; debouncing
-- folds a burst into one request; a line with much text right of the
-- cursor is skipped.
local T = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/helpers.lua')

T.run(function()
  local wisp = T.wisp()
  T.check('setup', wisp.setup({
    cmd = { T.bin, '--model', T.model, '--threads', '1' },
    auto_trigger = true, debounce_ms = 0, max_tokens = 1500, t_max_predict_ms = 0,
    -- no line breaks, so every request runs its 1500 tokens unless superseded:
    -- ~0.5 s at this tiny model's ~3000 tok/s, so each one is still running when
    -- the next key arrives even if a loaded machine stretches the 15 ms gaps
    infill_params = { temperature = 0, logit_bias = { { 185, false } } },
  }))
  T.ready()
  local buf = T.buffer({ 'def f(a):', '' }, 'auto_test.py')
  T.insert_at(2, 0)
  T.sleep(50)
  local before = T.server_status().requests
  local st0 = wisp.stats()
  -- Type one key at a time, each while the previous request is still running.
  local keys = { 'Z', '9', 'Q', '8', 'Y', '7' }
  for _, k in ipairs(keys) do
    T.feed(k)
    T.sleep(15)
  end
  T.eq('typed into the buffer', vim.api.nvim_buf_get_lines(buf, 1, 2, false)[1], table.concat(keys))
  T.wait_for('the last suggestion is shown', function() return wisp.suggestion() end)
  T.wait_for('all requests answered', function() return wisp.stats().in_flight == 0 end, 30000)
  local st = wisp.stats()
  local sent = st.requests - st0.requests
  T.check('one request per keystroke (at least)', sent >= #keys, { sent = sent })
  T.check('the plugin cancelled none itself', st.cancelled == st0.cancelled, st)
  local sup = st.superseded - st0.superseded
  T.check('earlier requests were answered -32800 (superseded)', sup >= #keys - 1, { superseded = sup })
  local after = T.server_status().requests
  T.check('server status counts them cancelled', after.cancelled - before.cancelled >= #keys - 1,
    { before = before, after = after })
  T.check('and exactly one of the burst completed', st.completed - st0.completed >= 1, st)
  T.check('the shown suggestion is for the final text', wisp._state.sugg.col == #table.concat(keys))
  T.feed('<Esc>')
  T.sleep(20)

  -- Debounce: a burst of keys faster than debounce_ms makes one request.
  T.check('setup with debounce', wisp.setup({
    cmd = { T.bin, '--model', T.model, '--threads', '1' },
    auto_trigger = true, debounce_ms = 300, max_tokens = 8,
  }))
  T.ready()
  T.buffer({ 'def g(b):', '' }, 'auto_test2.py')
  T.insert_at(2, 0)
  T.sleep(400)
  local r0 = wisp.stats().requests
  for _, k in ipairs({ 'A', '1', 'B', '2' }) do
    T.feed(k)
    T.sleep(20)
  end
  T.wait_for('debounced suggestion', function() return wisp.stats().requests > r0 end, 5000)
  T.sleep(400)
  T.eq('one request for the burst', wisp.stats().requests - r0, 1)

  -- The line-suffix rule: text right of the cursor blocks auto requests.
  T.feed('<Esc>')
  T.sleep(20)
  T.buffer({ 'x = compute(alpha, beta, gamma)' }, 'auto_test3.py')
  T.insert_at(1, 12)
  T.sleep(400)
  local r1 = wisp.stats().requests
  T.feed('Z')
  T.sleep(500)
  T.eq('no auto request with many characters right of the cursor', wisp.stats().requests, r1)
  vim.cmd('WispSuggest')
  T.wait_for('a manual request still works there', function() return wisp.stats().requests > r1 end)
  T.feed('<Esc>')
end)
