-- Ghost text: the suggestion drawn at the cursor with one extmark in the
-- namespace `wisp`. Neovim 0.10 and later draw the first line as inline
-- virtual text (the rest of the line moves right, as it will when
-- accepted); older versions, down to Debian 12's 0.7, have no inline
-- virtual text, so the first line is an overlay that redraws the rest of
-- the line after the suggestion, and the other lines are virt_lines.
local M = {}

M.ns = vim.api.nvim_create_namespace('wisp')
M.inline = vim.fn.has('nvim-0.10') == 1

local marks = {} -- buf -> extmark id

local function expand_tabs(s, ts)
  if not s:find('\t', 1, true) then
    return s
  end
  return (s:gsub('\t', string.rep(' ', ts)))
end

function M.clear(buf)
  if buf and vim.api.nvim_buf_is_valid(buf) then
    vim.api.nvim_buf_clear_namespace(buf, M.ns, 0, -1)
  end
  if buf then
    marks[buf] = nil
  end
end

-- Draws `text` (the suggestion from the cursor on) at (row, col); `after`
-- is the text right of the cursor on that line. `info` (optional) is shown
-- after the first line in the WispInfo highlight.
function M.show(buf, row, col, text, after, info)
  if not vim.api.nvim_buf_is_valid(buf) then
    return
  end
  local ts = vim.bo[buf].tabstop
  local lines = vim.split(text, '\n', { plain = true })
  for i, l in ipairs(lines) do
    lines[i] = expand_tabs(l, ts)
  end
  after = expand_tabs(after or '', ts)
  local opts = { id = marks[buf], hl_mode = 'combine' }
  local first = { { lines[1], 'WispSuggestion' } }
  local rest = {}
  for i = 2, #lines do
    rest[#rest + 1] = { { lines[i], 'WispSuggestion' } }
  end
  if M.inline then
    opts.virt_text_pos = 'inline'
  else
    opts.virt_text_pos = 'overlay'
    if after ~= '' then
      if #lines == 1 then
        -- The overlay covers the line's rest: draw it again after the suggestion.
        first[#first + 1] = { after, 'Normal' }
      else
        -- The rest of the line goes to the end of the last suggested line.
        first[1][1] = first[1][1] .. string.rep(' ', math.max(0, vim.fn.strdisplaywidth(after) - vim.fn.strdisplaywidth(first[1][1])))
        rest[#rest][#rest[#rest] + 1] = { after, 'Normal' }
      end
    end
  end
  if info and info ~= '' then
    first[#first + 1] = { '  ' .. info, 'WispInfo' }
  end
  opts.virt_text = first
  if #rest > 0 then
    opts.virt_lines = rest
  end
  local ok, id = pcall(vim.api.nvim_buf_set_extmark, buf, M.ns, row, col, opts)
  if ok then
    marks[buf] = id
  else
    marks[buf] = nil
  end
end

return M
