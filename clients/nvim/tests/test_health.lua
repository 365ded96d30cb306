-- :checkhealth wisp: binary, version, model loads, FIM support; and errors
-- for a missing binary and a model without FIM tokens.
local T = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/helpers.lua')

local function health()
  vim.cmd('checkhealth wisp')
  local text = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
  vim.cmd('bwipeout!')
  return text
end

local function has(text, pattern)
  return text:find(pattern) ~= nil
end

T.run(function()
  -- :help wisp: the help file's tags build cleanly.
  local doc = vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h:h') .. '/doc/wisp.txt'
  local dir = vim.fn.tempname()
  vim.fn.mkdir(dir, 'p')
  vim.fn.writefile(vim.fn.readfile(doc), dir .. '/wisp.txt')
  vim.cmd('helptags ' .. vim.fn.fnameescape(dir))
  local tags = table.concat(vim.fn.readfile(dir .. '/tags'), '\n')
  for _, tag in ipairs({ 'wisp.txt', 'wisp.setup()', ':WispSuggest', ':WispAccept', ':WispAcceptLine',
                         ':WispDismiss', ':WispStatus', ':WispStop', 'wisp-statusline', 'wisp-health' }) do
    T.check('help tag ' .. tag, tags:find(tag, 1, true) ~= nil)
  end

  local wisp = T.wisp()
  wisp.setup({ cmd = { T.bin, '--model', T.model, '--threads', '1' }, auto_trigger = false })
  T.ready()
  local text = health()
  T.log(text)
  T.check('binary found', has(text, 'OK[^\n]*binary: '), text)
  T.check('version', has(text, 'OK[^\n]*version: wisp %d'), text)
  T.check('model loads', has(text, 'OK[^\n]*model loads: '), text)
  T.check('FIM supported', has(text, 'OK[^\n]*fill%-in%-the%-middle: supported'), text)
  T.check('no error', not has(text, 'ERROR'), text)

  wisp.setup({ cmd = { '/nonexistent/wisp' }, auto_trigger = false })
  text = health()
  T.check('missing binary is an error', has(text, "ERROR[^\n]*wisp binary '/nonexistent/wisp' not found"), text)

  local stories = T.stories
  wisp.setup({ cmd = { T.bin, '--model', stories }, auto_trigger = false })
  text = health()
  T.check('model without FIM is an error', has(text, 'ERROR[^\n]*no FIM tokens'), text)

  wisp.setup({ cmd = { T.bin, '--model', '/nonexistent/model.gguf' }, auto_trigger = false })
  text = health()
  T.check('missing model is an error', has(text, 'ERROR[^\n]*does not load[^\n]*No such file'), text)
end)
