-- Helpers shared by the dime-milter miltertest scenarios (loaded with dofile).
-- Globals from the command line (-D): MILTER (binary), CONF (dime.conf), SOCK (milter socket,
-- libmilter syntax), DATA (directory with the prepared messages), SPOOL (the fake relay's).

function fail(msg) error(msg, 0) end

function read_file(path)
  local f = io.open(path, "rb")
  if f == nil then fail("cannot read " .. path) end
  local s = f:read("*a")
  f:close()
  return s
end

function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- A message file (CR LF) as a list of {name, value} (value after the colon, folding kept)
-- and the body.
function parse_message(path)
  local text = read_file(path)
  local sep = text:find("\r\n\r\n", 1, true)
  if sep == nil then fail(path .. ": no empty line") end
  local head, body = text:sub(1, sep + 1), text:sub(sep + 4)
  local fields = {}
  for line in head:gmatch("(.-)\r\n") do
    if line:match("^[ \t]") then
      fields[#fields].value = fields[#fields].value .. "\r\n" .. line
    else
      local name, value = line:match("^([^:]+):(.*)$")
      if name == nil then fail(path .. ": bad header line") end
      fields[#fields + 1] = { name = name, value = value }
    end
  end
  return fields, body
end

function start_filter()
  mt.echo("starting " .. MILTER .. " -c " .. CONF .. " on " .. SOCK)
  mt.startfilter(MILTER, "-f", "-c", CONF, "-p", SOCK)
end

local reply_names = {}
for _, n in ipairs({ "SMFIR_ACCEPT", "SMFIR_CONTINUE", "SMFIR_DISCARD", "SMFIR_REJECT",
                     "SMFIR_TEMPFAIL", "SMFIR_REPLYCODE" }) do
  if _G[n] then reply_names[_G[n]] = n end
end
function rname(r) return reply_names[r] or tostring(r) end

-- Runs one SMTP transaction on a new connection. t = { ip, auth, from, rcpts, message (path)
-- or fields + body, qid }. Returns the connection, the stage the filter decided at ("eoh"
-- or "eom") and the reply.
function transaction(t)
  local conn = mt.connect(SOCK, 100, 0.1)
  if conn == nil then fail("mt.connect failed") end
  local function check(rc, what)
    if rc ~= nil then fail(what .. ": " .. tostring(rc)) end
    local r = mt.getreply(conn)
    return r
  end
  local r = check(mt.conninfo(conn, "client.example", t.ip or "192.0.2.7"), "conninfo")
  if r ~= SMFIR_CONTINUE then return conn, "connect", r end
  -- HELO before the MAIL macros: libmilter clears the macros of later stages at each stage
  r = check(mt.helo(conn, "client.example"), "helo")
  if r ~= SMFIR_CONTINUE then return conn, "helo", r end
  local qid = t.qid or "TESTQID"
  if t.auth then
    mt.macro(conn, SMFIC_MAIL, "i", qid, "{auth_authen}", t.auth)
  else
    mt.macro(conn, SMFIC_MAIL, "i", qid)
  end
  r = check(mt.mailfrom(conn, "<" .. t.from .. ">"), "mailfrom")
  if r ~= SMFIR_CONTINUE then return conn, "mail", r end
  for _, rc in ipairs(t.rcpts) do
    r = check(mt.rcptto(conn, "<" .. rc .. ">"), "rcptto")
    if r ~= SMFIR_CONTINUE then return conn, "rcpt", r end
  end
  local fields, body = t.fields, t.body
  if t.message then fields, body = parse_message(t.message) end
  -- the space after the colon: without SMFIP_HDR_LEADSPC the MTA drops it, with it
  -- miltertest puts one back itself
  for _, f in ipairs(fields) do
    local v = f.value:gsub("^ ", "")
    r = check(mt.header(conn, f.name, v), "header")
    if r ~= SMFIR_CONTINUE then return conn, "header", r end
  end
  r = check(mt.eoh(conn), "eoh")
  if r ~= SMFIR_CONTINUE then return conn, "eoh", r end
  if #body > 0 then
    local pos = 1
    while pos <= #body do
      r = check(mt.bodystring(conn, body:sub(pos, pos + 32767)), "body")
      if r ~= SMFIR_CONTINUE then return conn, "body", r end
      pos = pos + 32768
    end
  end
  r = check(mt.eom(conn), "eom")
  return conn, "eom", r
end

-- The milter's reply per event (milter/mf_policy.c, mf_event_reply): enhanced status
-- without its class digit, and the text after "DIME: ".
replies = {
  ["no-signet"] = { ".7.1", "a recipient has no DIME signet and legacy SMTP is not allowed" },
  ["dns-error"] = { ".4.3", "DIME lookup failed, try again later" },
  ["bogus"] = { ".7.1", "DIME record or signets of a party failed validation" },
  ["keyvault-unavailable"] = { ".3.0", "keyvault unavailable" },
  ["relay-unavailable"] = { ".3.0", "relay unavailable" },
  ["verify-failure"] = { ".7.5", "D/MIME message failed verification" },
  ["too-large"] = { ".3.4", "message too large for DIME" },
}

-- Runs a transaction and checks the stage and the reply. want is a reply code, or "tempfail"
-- / "reject": the filter's own SMTP reply (SMFIR_REPLYCODE) with a 451 / 550 code and the
-- enhanced status and text of event (a name in replies, or { esc, text } itself).
function expect(desc, t, stage, want, event)
  local conn, st, r = transaction(t)
  local good = st == stage
  if want == "tempfail" or want == "reject" then
    local code = want == "tempfail" and "451" or "550"
    local rep = type(event) == "table" and event or replies[event]
    if rep == nil then fail(desc .. ": unknown event " .. tostring(event)) end
    -- miltertest compares "code esc text" as one string; this version refuses the five
    -- argument form, so esc carries the text as well
    -- (miltertest shows the reply's text only at end of message: before, the code must do)
    good = good and r == SMFIR_REPLYCODE and (st ~= "eom" or
           mt.eom_check(conn, MT_SMTPREPLY, code, code:sub(1, 1) .. rep[1] .. " DIME: " .. rep[2]))
  else
    good = good and r == want
  end
  if not good then
    fail(desc .. ": wanted " .. (type(want) == "string" and want or rname(want)) .. " at " ..
         stage .. ", got " .. rname(r) .. " at " .. st)
  end
  mt.echo("ok: " .. desc)
  return conn
end

-- Runs the scenario function under pcall (miltertest hides the message of an uncaught
-- error) and prints the verdict the TAP wrapper looks for.
function run(f)
  local ok, err = pcall(f)
  if not ok then
    mt.echo("*** FAIL: " .. tostring(err))
    error(err)
  end
  mt.echo("*** PASS")
end

-- The fields of a message file with the From field's value replaced, and its body.
function with_from(path, from)
  local fields, body = parse_message(path)
  for _, f in ipairs(fields) do
    if f.name == "From" then f.value = " " .. from end
  end
  return fields, body
end

-- The fields of a message file with extra fields on top, and its body.
function with_fields(path, extra)
  local fields, body = parse_message(path)
  for i = #extra, 1, -1 do table.insert(fields, 1, extra[i]) end
  return fields, body
end

-- The replies that name the sender (mf_filter.c): a sender the gateway cannot sign for, a
-- login that does not own the sender, a From field that is not the sender.
function no_account(addr)
  return { ".7.1", addr .. " has no DIME account; mail to DIME recipients is never sent unsigned" }
end
function not_trustful(addr, mode)
  return { ".7.1", addr .. " is a " .. mode .. " DIME user; only D/MIME made by the sender's own client goes to DIME recipients" }
end
function not_owner(login, addr)
  return { ".7.1", "the login " .. login .. " does not own the sender address " .. addr .. "; nothing signed" }
end
function from_mismatch(addr)
  return { ".7.1", "the From field must name the sender address " .. addr .. " alone to be signed" }
end

-- How many files the fake relay's spool holds (submissions leave one per message and request).
function spool_count()
  local f = io.popen("ls -1 '" .. SPOOL .. "' | wc -l")
  local n = tonumber(f:read("*a"))
  f:close()
  return n
end
