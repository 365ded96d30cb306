-- The request parts built from a buffer: a prefix window snapped to the
-- alignment grid (so it stays identical while the cursor moves down), the
-- typed part of the line as the prompt, the indentation, and blank lines.
local T = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/helpers.lua')
local context = require('wisp.context')
local config = require('wisp.config')

T.run(function()
  local cfg = config.build({ n_prefix = 10, n_suffix = 2, prefix_align = 8 })
  local lines = {}
  for i = 1, 40 do
    lines[i] = 'line' .. i
  end
  lines[30] = '    foo(bar)'
  lines[31] = '      '
  local buf = T.buffer(lines)

  local c = context.build(buf, 29, 7, cfg) -- row 30 (0-based 29), after '    foo'
  T.eq('prompt: the line up to the cursor', c.prompt, '    foo')
  T.eq('suffix: rest of the line, then n_suffix lines', c.suffix, '(bar)\n      \nline32\n')
  T.eq('n_indent: the line indentation', c.indent, 4)
  T.eq('line suffix', c.line_suffix, '(bar)')
  -- row 29 - 10 = 19, snapped down to 16: lines 17..29.
  T.eq('prefix from the aligned start', c.prefix, table.concat(vim.list_slice(lines, 17, 29), '\n') .. '\n')
  local c2 = context.build(buf, 30, 2, cfg)
  T.eq('one line down: the same prefix start', c2.prefix:sub(1, #c.prefix), c.prefix)

  T.eq('blank line: empty prompt', c2.prompt, '')
  T.eq('blank line: no n_indent', c2.indent, 0)
  T.eq('blank line: the blanks typed are trimmed from the completion', c2.strip, 2)
  T.eq('blank line: suffix without the blanks', c2.suffix, '\nline32\nline33\n')

  local top = context.build(buf, 0, 0, cfg)
  T.eq('first line: empty prefix', top.prefix, '')

  T.eq('config: unknown option', select(2, config.build({ nope = 1 })), "unknown option 'nope'")
  T.eq('config: bad type', select(2, config.build({ debounce_ms = 'x' })), "option 'debounce_ms' must be a number, not a string")
  T.eq('config: empty cmd', select(2, config.build({ cmd = {} })), "option 'cmd' must be a list: the binary, then its arguments")
  T.eq('config: keymaps merge', config.build({ keymaps = { accept = false } }).keymaps.accept_line, '<S-Tab>')
end)
