-- What the plugin tells the user about its state: the statusline
-- component and :WispStatus (the plugin's counters, then the server's).
local R = {}

-- A statusline component: `%{v:lua.require'wisp'.statusline()}`.
function R.statusline(S)
  if not S.cfg then
    return ''
  end
  if S.phase == 'loading' or S.progress then
    return S.progress and string.format('wisp: loading %d%%', S.progress) or 'wisp: loading'
  end
  if S.phase ~= 'ready' then
    return 'wisp: ' .. S.phase
  end
  local l = S.stats.last
  if not l then
    return 'wisp: ready'
  end
  local parts = { 'wisp:' }
  if l.prompt_tokens then
    parts[#parts + 1] = string.format('%d/%d cached', l.cached_tokens or 0, l.prompt_tokens)
  end
  if l.ttft_ms then
    parts[#parts + 1] = string.format('| %.0f ms first token', l.ttft_ms)
  end
  if l.decode_tokens_per_s and l.decode_tokens_per_s > 0 then
    parts[#parts + 1] = string.format('| %.0f t/s', l.decode_tokens_per_s)
  end
  return table.concat(parts, ' ')
end

local function fmt_num(v, spec)
  if v == nil then
    return '-'
  end
  return string.format(spec or '%.1f', v)
end

-- Lines describing the plugin's state (the first half of :WispStatus).
function R.lines(S, M)
  local st = M.stats()
  local lines = {}
  lines[#lines + 1] = string.format('wisp.nvim: %s%s', st.phase, st.pid and (', pid ' .. st.pid) or '')
  if S.cfg then
    lines[#lines + 1] = 'command: ' .. table.concat(S.cfg.cmd, ' ')
  end
  if S.model then
    lines[#lines + 1] = string.format('model: %s (%s, %s parameters, FIM %s)', tostring(S.model.name),
      tostring(S.model.path), tostring(S.model.n_params), S.fim and 'yes' or 'no')
  end
  if S.fail_reason then
    lines[#lines + 1] = 'problem: ' .. S.fail_reason
  end
  lines[#lines + 1] = string.format('requests %d: %d completed, %d superseded, %d cancelled, %d errors; %d shown, %d accepted; %d restarts',
    st.requests, st.completed, st.superseded, st.cancelled, st.errors, st.shown, st.accepted, st.restarts)
  lines[#lines + 1] = string.format('prompt tokens %d, %d from cache (%s%%)', st.prompt_tokens, st.cached_tokens,
    st.cached_share and string.format('%.1f', 100 * st.cached_share) or '-')
  local l = st.last
  if l then
    lines[#lines + 1] = string.format('last: %s/%s prompt tokens cached, first token %s ms (server), first ghost %s ms after the key, %s t/s, %s tokens, finish %s',
      tostring(l.cached_tokens), tostring(l.prompt_tokens), fmt_num(l.ttft_ms), fmt_num(l.show_ms),
      fmt_num(l.decode_tokens_per_s, '%.0f'), tostring(l.completion_tokens), tostring(l.finish_reason))
  end
  if st.ring then
    lines[#lines + 1] = string.format('repository context: %d chunks (%d queued, %d evicted)', st.ring.chunks,
      st.ring.queued, st.ring.evicted)
  end
  return lines
end

local function echo_lines(lines)
  local chunks = {}
  for i, l in ipairs(lines) do
    chunks[#chunks + 1] = { l .. (i < #lines and '\n' or '') }
  end
  vim.api.nvim_echo(chunks, true, {})
end

function R.show(S, M)
  local lines = R.lines(S, M)
  if not S.server then
    echo_lines(lines)
    return
  end
  M.server_status(function(err, r)
    if err then
      lines[#lines + 1] = 'server status: ' .. tostring(err.message)
    else
      local q, pc, tk = r.requests or {}, r.prefix_cache or {}, r.tokens or {}
      lines[#lines + 1] = string.format('server: %s requests received, %s completed, %s cancelled, %s failed, %s in flight; uptime %.1f s',
        tostring(q.received), tostring(q.completed), tostring(q.cancelled), tostring(q.failed),
        tostring(q.in_flight), (tonumber(r.uptime_ms) or 0) / 1000)
      lines[#lines + 1] = string.format('server prefix cache: %s hit tokens of %s queried, %s blocks cached; %s prompt tokens computed, %s generated',
        tostring(pc.hit_tokens), tostring(pc.query_tokens), tostring(pc.blocks_cached), tostring(tk.prompt),
        tostring(tk.generated))
    end
    echo_lines(lines)
  end)
end

return R
