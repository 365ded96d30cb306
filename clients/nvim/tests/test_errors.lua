-- What the user sees when something is wrong: one clear vim.notify, never
-- a Lua traceback, and the editor keeps working.
local T = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/helpers.lua')
local ERROR = vim.log.levels.ERROR

local function noted(pattern, level)
  for _, n in ipairs(T.notes) do
    if n.msg:find(pattern) and (level == nil or n.level == level) then
      return n.msg
    end
  end
end

T.run(function()
  local wisp = T.wisp()

  -- A missing binary.
  T.notes = {}
  wisp.setup({ cmd = { '/nonexistent/wisp' }, auto_trigger = true })
  T.wait_for('missing-binary message', function() return noted('not found', ERROR) end)
  T.eq('failed', wisp.stats().phase, 'failed')
  T.buffer({ 'x = ' })
  T.insert_at(1, 4)
  T.feed('abc')
  vim.cmd('WispSuggest')
  T.sleep(100)
  T.eq('typing still works', vim.api.nvim_buf_get_lines(0, 0, 1, false)[1], 'x = abc')
  T.feed('<Esc>')
  vim.cmd('WispStatus')
  T.sleep(20)

  -- A missing model file: wisp exits at once; its reason reaches the user.
  T.notes = {}
  wisp.setup({ cmd = { T.bin, '--model', '/nonexistent/model.gguf' } })
  T.wait_for('missing-model message', function() return noted('No such file', ERROR) end)
  T.eq('failed, not restarting', wisp.stats().phase, 'failed')
  T.eq('one message', #T.notes, 1)

  -- A model without FIM tokens.
  local stories = T.stories
  T.notes = {}
  wisp.setup({ cmd = { T.bin, '--model', stories } })
  T.wait_for('no-FIM message', function() return noted('fill%-in%-the%-middle', ERROR) end)
  T.eq('no FIM: failed', wisp.stats().phase, 'failed')
  T.notes = {}
  T.buffer({ 'x = ' })
  vim.cmd('WispSuggest')
  T.wait_for(':WispSuggest says why again', function() return noted('fill%-in%-the%-middle', ERROR) end)

  -- No model at all.
  T.notes = {}
  wisp.setup({ cmd = { T.bin } })
  T.wait_for('no-model message', function() return noted('no model', ERROR) end)

  -- The model given as an option: loaded over the protocol.
  T.notes = {}
  wisp.setup({ cmd = { T.bin, '--threads', '1' }, model = T.model })
  T.ready()
  T.wait_for('model loaded message', function() return noted('model loaded', nil) end)
  T.check('model known', wisp._state.model ~= nil and wisp._state.fim)
  -- ... and one that is not there.
  T.notes = {}
  wisp.setup({ cmd = { T.bin }, model = '/nonexistent/model.gguf' })
  T.wait_for('model/load error message', function() return noted('cannot load the model', ERROR) end)

  -- A bad option is named.
  T.notes = {}
  T.eq('bad option refused', wisp.setup({ debounce = 10 }), false)
  T.check('named', noted("unknown option 'debounce'", ERROR) ~= nil, T.notes)
  T.eq('wrong type refused', wisp.setup({ cmd = 'wisp' }), false)
end)
