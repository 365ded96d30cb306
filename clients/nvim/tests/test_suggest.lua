-- Manual trigger: the suggestion streams in as ghost text and accepting it
-- (all, one line, one word, through the default keys) inserts exactly it.
local T = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/helpers.lua')

T.run(function()
  local wisp = T.wisp()
  -- A sampled (seeded, so reproducible) completion with a bias towards line
  -- breaks, so the random-weight model produces more than one line.
  T.check('setup', wisp.setup({
    cmd = { T.bin, '--model', T.model, '--threads', '1' },
    auto_trigger = false,
    infill_params = { temperature = 1, seed = 2, logit_bias = { { 185, 3.5 } } },
    max_tokens = 24,
  }))
  T.ready()
  local lines = { 'def f(a):', 'x = ' }

  local function suggestion_at_end()
    local buf = T.buffer(lines)
    T.insert_at(2, #lines[2])
    local before = wisp.stats()
    vim.cmd('WispSuggest')
    T.wait_for('suggestion shown', function() return wisp.suggestion() end)
    T.wait_for('suggestion complete', function() return wisp.stats().completed > before.completed end)
    T.sleep(20)
    return buf, wisp.suggestion(), wisp.stats()
  end

  -- 1. It appears, streams, and lives in the `wisp` namespace at the cursor.
  local buf, sugg, st = suggestion_at_end()
  T.log('suggestion: ' .. vim.inspect(sugg))
  T.check('suggestion has two lines', sugg:find('\n', 1, true) ~= nil, sugg)
  T.check('the ghost text streamed (more than one update)', (st.last.updates or 0) > 1, st.last)
  T.check('nothing was inserted while showing', vim.deep_equal(vim.api.nvim_buf_get_lines(buf, 0, -1, false), lines))
  local marks = T.extmarks(buf)
  T.eq('one extmark in namespace wisp', #marks, 1)
  local m = marks[1]
  T.eq('extmark at the cursor', { m[2], m[3] }, { 1, #lines[2] })
  local first, rest = sugg:match('^([^\n]*)\n(.*)$')
  local vt = m[4].virt_text
  T.eq('first line drawn at the cursor', vt[1][1], first)
  T.eq('other lines as virtual lines', #(m[4].virt_lines or {}), #vim.split(rest, '\n', { plain = true }))
  T.eq('first line in WispSuggestion', vt[1][2], 'WispSuggestion')
  T.check('server timings recorded', st.last.prompt_tokens ~= nil and st.last.ttft_ms ~= nil, st.last)
  T.check('statusline shows timings', wisp.statusline():find('cached') ~= nil, wisp.statusline())
  local sl = vim.api.nvim_eval_statusline([[%{v:lua.require'wisp'.statusline()}]], {}).str
  T.check('the documented statusline expression works', sl:find('^wisp: %d+/%d+ cached') ~= nil, sl)

  -- 2. Accept all (Tab).
  T.feed('<Tab>')
  T.wait_for('accepted', function() return wisp.suggestion() == nil end)
  local got = table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), '\n')
  T.eq('Tab inserts exactly the suggestion', got, table.concat(lines, '\n') .. sugg)
  local want_lines = vim.split(lines[2] .. sugg, '\n', { plain = true })
  T.eq('cursor at the end of the inserted text', vim.api.nvim_win_get_cursor(0), { 1 + #want_lines, #want_lines[#want_lines] })
  T.eq('ghost cleared', #T.extmarks(buf), 0)
  T.feed('<Esc>')
  T.sleep(20)

  -- 3. Accept one line (S-Tab): the first line; the rest stays shown.
  local buf2, sugg2 = suggestion_at_end()
  T.eq('same prompt, same suggestion', sugg2, sugg)
  T.feed('<S-Tab>')
  T.wait_for('line accepted', function() return vim.api.nvim_buf_get_lines(buf2, 1, 2, false)[1] ~= lines[2] end)
  T.eq('S-Tab inserts the first line', vim.api.nvim_buf_get_lines(buf2, 0, -1, false), { lines[1], lines[2] .. first })
  T.eq('the rest stays shown', wisp.suggestion(), '\n' .. rest)
  T.feed('<Esc>')
  T.sleep(20)

  -- 4. Accept one word (C-B), then :WispAcceptLine for the rest of the line.
  local buf3 = suggestion_at_end()
  local word = sugg:match('^%s*[%w_]+') or sugg:match('^%s*[^%s%w_]+')
  T.feed('<C-B>')
  T.wait_for('word accepted', function() return vim.api.nvim_buf_get_lines(buf3, 1, 2, false)[1] ~= lines[2] end)
  T.eq('C-B inserts the first word', vim.api.nvim_buf_get_lines(buf3, 1, 2, false)[1], lines[2] .. word)
  T.eq('the rest after the word stays shown', wisp.suggestion(), sugg:sub(#word + 1))
  vim.cmd('WispAcceptLine')
  T.eq(':WispAcceptLine takes the rest of the line', vim.api.nvim_buf_get_lines(buf3, 1, 2, false)[1], lines[2] .. first)

  -- 5. Typing what the suggestion says keeps it (no new request); typing
  -- something else hides it; :WispDismiss hides it.
  vim.cmd('WispDismiss')
  T.eq(':WispDismiss hides it', wisp.suggestion(), nil)
  T.feed('<Esc>')
  T.sleep(20)
  local buf4 = suggestion_at_end()
  local n_req = wisp.stats().requests
  local c1 = sugg:sub(1, 1)
  T.feed(c1)
  T.wait_for('typed', function() return vim.api.nvim_buf_get_lines(buf4, 1, 2, false)[1] == lines[2] .. c1 end)
  T.sleep(20)
  T.eq('typing the suggestion advances it', wisp.suggestion(), sugg:sub(2))
  T.eq('no new request for it', wisp.stats().requests, n_req)
  T.feed('Q')
  T.sleep(20)
  T.eq('another key hides it', wisp.suggestion(), nil)
  T.feed('<Esc>')

  -- 6. :WispStatus prints the plugin's and the server's counters.
  vim.cmd('WispStatus')
  T.wait_for(':WispStatus output', function()
    return vim.fn.execute('messages'):find('server: %d+ requests received') ~= nil
  end)
end)
