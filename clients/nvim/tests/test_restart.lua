-- wisp killed under the plugin: the user gets a message, the plugin starts
-- a new wisp, and the next suggestion works. :WispStop stops it for good.
local T = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/helpers.lua')

T.run(function()
  local wisp = T.wisp()
  T.check('setup', wisp.setup({
    cmd = { T.bin, '--model', T.model, '--threads', '1' },
    auto_trigger = false, max_tokens = 400, t_max_predict_ms = 0,
    infill_params = { temperature = 0, logit_bias = { { 185, false } } },
  }))
  T.ready()
  local pid = wisp.stats().pid
  local buf = T.buffer({ 'def f(a):', 'x = ' })
  T.insert_at(2, 4)
  vim.cmd('WispSuggest')
  T.wait_for('streaming', function() return wisp.suggestion() end)
  -- Killed in the middle of a generation.
  vim.loop.kill(pid, 9)
  T.wait_for('restart message', function()
    for _, n in ipairs(T.notes) do
      if n.msg:find('exited') and n.msg:find('restarting') then
        return true
      end
    end
  end)
  T.eq('the ghost of the dead request is gone', #T.extmarks(buf), 0)
  T.ready()
  local st = wisp.stats()
  T.check('a new wisp', st.pid ~= nil and st.pid ~= pid, st)
  T.eq('restart counted', st.restarts, 1)
  vim.cmd('WispSuggest')
  T.wait_for('the next suggestion works', function() return wisp.suggestion() end)
  T.feed('<Esc>')
  T.sleep(20)

  -- :WispStop shuts it down cleanly and it stays down.
  local pid2 = wisp.stats().pid
  vim.cmd('WispStop')
  T.wait_for('stopped', function() return wisp.stats().pid == nil end)
  T.sleep(300)
  T.eq('no restart after :WispStop', wisp.stats().phase, 'stopped')
  T.check('the process is gone', vim.loop.kill(pid2, 0) ~= 0)
  -- :WispStart brings it back.
  vim.cmd('WispStart')
  T.ready()
  T.check('running again', wisp.stats().pid ~= nil)
end)
