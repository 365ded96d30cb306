-- Repository context: a chunk of a buffer the user left joins the ring while
-- the user is idle and goes to wisp as input_extra; a ring chunk too similar
-- to the code at the cursor is evicted (Dice similarity); yanks are picked.
local T = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/helpers.lua')
local ring = require('wisp.ring')

T.run(function()
  -- The similarity itself.
  T.eq('Dice: same lines', ring.similarity({ 'a', 'b' }, { 'a', 'b' }), 1)
  T.eq('Dice: nothing shared', ring.similarity({ 'a', 'b' }, { 'c', 'd' }), 0)
  T.eq('Dice: half', ring.similarity({ 'a', 'b' }, { 'a', 'c' }), 0.5)

  local wisp = T.wisp()
  T.check('setup', wisp.setup({
    cmd = { T.bin, '--model', T.model, '--threads', '1' },
    auto_trigger = false, max_tokens = 4, ring_update_ms = 50,
  }))
  T.ready()
  local dir = vim.fn.tempname()
  vim.fn.mkdir(dir, 'p')
  local lib = {}
  for i = 1, 40 do
    lib[#lib + 1] = string.format('def helper_%d(x):\n    return x * %d', i, i)
  end
  lib = vim.split(table.concat(lib, '\n'), '\n', { plain = true })
  vim.fn.writefile(lib, dir .. '/lib.py')
  vim.cmd('edit ' .. dir .. '/lib.py')
  vim.api.nvim_win_set_cursor(0, { 20, 0 })
  -- Leaving the saved buffer queues a chunk around its cursor.
  vim.cmd('enew')
  local buf = vim.api.nvim_get_current_buf()
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, { 'import lib', '', 'def main():', '    y = ' })
  T.wait_for('chunk in the ring', function() return wisp.stats().ring.chunks >= 1 end, 5000)
  -- The warm-up infill for the new extra context was sent with the move.
  T.wait_for('warm-up answered', function() return wisp._state.server:in_flight('infill') == 0 end)
  T.insert_at(4, 8)
  local done0 = wisp.stats().completed
  vim.cmd('WispSuggest')
  T.wait_for('answer', function() return wisp.stats().completed > done0 end)
  local last = wisp.stats().last
  T.check('input_extra was sent', last.prompt_parts and last.prompt_parts.extra > 0, last)
  -- The cache serves whole 16-token blocks, and the token at the seam after
  -- the extra part may tokenize differently: up to two blocks short.
  T.check('and served from cache after the warm-up', (last.cached_tokens or 0) >= last.prompt_parts.extra - 32, last)
  T.feed('<Esc>')
  T.sleep(20)

  -- The same code at the cursor: the ring's copy is evicted.
  local evicted = wisp.stats().ring.evicted
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, vim.list_extend(vim.deepcopy(lib), { '' }))
  T.insert_at(21, 0)
  local done1 = wisp.stats().completed
  vim.cmd('WispSuggest')
  T.wait_for('answer', function() return wisp.stats().completed > done1 end)
  local st = wisp.stats()
  T.check('similar chunk evicted', st.ring.evicted > evicted and st.ring.chunks == 0, st.ring)
  T.eq('so nothing extra was sent', st.last.prompt_parts.extra, 0)
  T.feed('<Esc>')
  T.sleep(20)

  -- Far parts of a long current file are picked (outside the local window).
  T.check('setup for far chunks', wisp.setup({
    cmd = { T.bin, '--model', T.model, '--threads', '1' },
    auto_trigger = false, max_tokens = 4, ring_update_ms = 50, n_prefix = 20, n_suffix = 10,
  }))
  T.ready()
  local long = {}
  for i = 1, 300 do
    long[i] = 'value_' .. i .. ' = ' .. i
  end
  local lbuf = T.buffer(long, dir .. '/long.py')
  T.insert_at(150, #long[150])
  local q0 = #wisp._state.ring.queued + #wisp._state.ring.chunks
  vim.cmd('WispSuggest')
  T.wait_for('answer', function() return wisp.stats().in_flight == 0 and wisp.stats().completed >= 1 end)
  local r = wisp._state.ring
  local picked = {}
  for _, c in ipairs(vim.list_extend(vim.deepcopy(r.queued), r.chunks)) do
    picked[#picked + 1] = c.lines[1] .. '..' .. c.lines[#c.lines]
  end
  T.check('two far chunks queued', #r.queued + #r.chunks - q0 == 2, picked)
  T.check('the code above the prefix window', vim.tbl_contains(picked, 'value_66 = 66..value_129 = 129'), picked)
  T.check('the code below the suffix window', vim.tbl_contains(picked, 'value_161 = 161..value_224 = 224'), picked)
  T.feed('<Esc>')
  T.sleep(20)
  vim.api.nvim_buf_delete(lbuf, { force = true })

  -- A yank is picked too.
  vim.api.nvim_set_current_buf(buf)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, { 'alpha = 1', 'beta = 2', 'gamma = 3', 'delta = 4' })
  vim.cmd('normal! ggyG')
  local want = 'alpha = 1\nbeta = 2\ngamma = 3\ndelta = 4\n'
  T.wait_for('the yank in the ring', function()
    for _, c in ipairs(vim.list_extend(vim.deepcopy(wisp._state.ring.queued), wisp._state.ring.chunks)) do
      if c.text == want then
        return true
      end
    end
  end, 5000)
end)
