-- Moving the cursor (or leaving insert mode) cancels the request in flight:
-- the plugin sends $/cancelRequest, wisp answers -32800, the ghost goes.
local T = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/helpers.lua')

T.run(function()
  local wisp = T.wisp()
  T.check('setup', wisp.setup({
    cmd = { T.bin, '--model', T.model, '--threads', '1' },
    auto_trigger = false, max_tokens = 1000, t_max_predict_ms = 0,
    infill_params = { temperature = 0, logit_bias = { { 185, false } } },
  }))
  T.ready()
  local buf = T.buffer({ 'def f(a):', '    return a', 'x = ' })
  for _, how in ipairs({ '<Left>', '<Up>', '<Esc>' }) do
    T.insert_at(3, 4)
    local st0 = wisp.stats()
    local s0 = T.server_status().requests
    vim.cmd('WispSuggest')
    T.wait_for('streaming', function() return wisp.suggestion() end)
    T.check('still running', wisp.stats().in_flight == 1)
    T.feed(how)
    T.wait_for('answered', function() return wisp.stats().in_flight == 0 end)
    local st = wisp.stats()
    T.eq(how .. ': the request was cancelled by the plugin', st.cancelled - st0.cancelled, 1)
    T.eq(how .. ': not completed', st.completed, st0.completed)
    T.eq(how .. ': ghost cleared', #T.extmarks(buf), 0)
    T.eq(how .. ': no suggestion', wisp.suggestion(), nil)
    local s1 = T.server_status().requests
    T.eq(how .. ': server counts it cancelled', s1.cancelled - s0.cancelled, 1)
    if how ~= '<Esc>' then
      T.feed('<Esc>')
    end
    T.sleep(20)
  end
end)
