-- dime-milter decision table with every service up: the local domain b.test (keyvault with
-- bob = Trustful, dave = Paranoid), the remote domain a.test (alice), the fake relay's
-- lookup table (secure a.test, not-dime nodime.test, bogus bogus.test, dead.test closes).
dofile(DATA .. "/common.lua")
start_filter()

run(function()
  local plain = DATA .. "/plain.eml"
  expect("mail from another domain passes untouched", { from = "x@ext.test", rcpts = { "bob@b.test" },
         message = plain }, "eoh", SMFIR_ACCEPT)
  expect("a local sender neither authenticated nor trusted is not converted",
         { from = "bob@b.test", rcpts = { "alice@a.test" }, message = plain }, "eoh", SMFIR_ACCEPT)
  expect("a wrapper for two recipients is left alone",
         { ip = "127.0.0.1", from = "alice@a.test", rcpts = { "bob@b.test", "dave@b.test" },
           message = DATA .. "/wrap-bob.eml" }, "eoh", SMFIR_ACCEPT)

  -- inbound: the original message comes back, verified
  local conn = expect("inbound wrapper for a Trustful recipient is converted",
    { ip = "127.0.0.1", from = "alice@a.test", rcpts = { "bob@b.test" },
      message = DATA .. "/wrap-bob.eml" }, "eom", SMFIR_ACCEPT)
  local ofields, obody = parse_message(DATA .. "/orig.eml")
  if not mt.eom_check(conn, MT_BODYCHANGE, obody) then fail("body not replaced by the original") end
  for _, n in ipairs({ "Content-Type", "MIME-Version", "Subject" }) do
    if not mt.eom_check(conn, MT_HDRDELETE, n) then fail("wrapper field " .. n .. " not deleted") end
  end
  for _, f in ipairs(ofields) do
    if not mt.eom_check(conn, MT_HDRADD, f.name) then fail("original field " .. f.name .. " not added") end
  end
  local ar = mt.getheader(conn, "Authentication-Results", 0)
  if ar == nil then fail("no Authentication-Results") end
  mt.echo("  A-R:" .. ar)
  for _, want in ipairs({ AUTHSERV .. ";", "dime=pass", "header.from=alice@a.test", ALICE_FP, AORG_FP }) do
    if not ar:find(want, 1, true) then fail("A-R lacks " .. want) end
  end
  if mt.eom_check(conn, MT_HDRDELETE, "Received") then fail("trace field deleted") end

  conn = expect("a wrapper for a Paranoid recipient stays untouched",
    { ip = "127.0.0.1", from = "alice@a.test", rcpts = { "dave@b.test" },
      message = DATA .. "/wrap-dave.eml" }, "eom", SMFIR_ACCEPT)
  if mt.eom_check(conn, MT_BODYCHANGE) or mt.eom_check(conn, MT_HDRINSERT) or
     mt.eom_check(conn, MT_HDRDELETE) then fail("Paranoid recipient's wrapper modified") end

  expect("a tampered wrapper is tempfailed (on-verify-failure default)",
    { ip = "127.0.0.1", from = "alice@a.test", rcpts = { "bob@b.test" },
      message = DATA .. "/wrap-tampered.eml" }, "eom", "tempfail", "verify-failure")
  expect("a wrapper whose author domain lookup fails is tempfailed",
    { ip = "127.0.0.1", from = "mallory@bogus.test", rcpts = { "bob@b.test" },
      message = DATA .. "/wrap-bogus.eml" }, "eom", "tempfail", "bogus")

  -- outbound
  conn = expect("outbound to a DIME recipient: submitted, recipient deleted, copy discarded",
    { auth = "bob", from = "bob@b.test", rcpts = { "alice@a.test" }, message = DATA .. "/out.eml",
      qid = "OUTQID1" }, "eom", SMFIR_DISCARD)
  if not mt.eom_check(conn, MT_RCPTDELETE, "<alice@a.test>") then fail("alice not deleted") end
  if not exists(SPOOL .. "/1.alice@a.test.dmsg") then fail("nothing submitted") end

  conn = expect("outbound to a DIME and a local recipient: the local one stays",
    { auth = "bob", from = "bob@b.test", rcpts = { "alice@a.test", "carol@b.test" },
      message = DATA .. "/out.eml", qid = "OUTQID2" }, "eom", SMFIR_ACCEPT)
  if not mt.eom_check(conn, MT_RCPTDELETE, "<alice@a.test>") then fail("alice not deleted") end
  if mt.eom_check(conn, MT_RCPTDELETE, "<carol@b.test>") then fail("local carol deleted") end
  if not exists(SPOOL .. "/2.alice@a.test.dmsg") then fail("second message not submitted") end

  expect("outbound from trusted-networks without authentication is converted",
    { ip = "127.0.0.1", from = "bob@b.test", rcpts = { "alice@a.test" }, message = DATA .. "/out.eml",
      qid = "OUTQID3" }, "eom", SMFIR_DISCARD)
  expect("outbound to a domain without DIME is tempfailed (on-no-signet = tempfail)",
    { auth = "bob", from = "bob@b.test", rcpts = { "carol@nodime.test" }, message = DATA .. "/out.eml" },
    "eom", "tempfail", "no-signet")
  expect("outbound to a bogus domain is tempfailed",
    { auth = "bob", from = "bob@b.test", rcpts = { "eve@bogus.test" }, message = DATA .. "/out.eml" },
    "eom", "tempfail", "bogus")
  expect("outbound when the relay dies mid-answer is tempfailed",
    { auth = "bob", from = "bob@b.test", rcpts = { "zed@dead.test" }, message = DATA .. "/out.eml" },
    "eom", "tempfail", "relay-unavailable")
  conn = expect("one bogus recipient tempfails the whole message, nothing submitted",
    { auth = "bob", from = "bob@b.test", rcpts = { "alice@a.test", "eve@bogus.test" },
      message = DATA .. "/out.eml", qid = "OUTQID4" }, "eom", "tempfail", "bogus")
  if mt.eom_check(conn, MT_RCPTDELETE, "<alice@a.test>") then fail("a recipient deleted on tempfail") end
  if exists(SPOOL .. "/4.alice@a.test.dmsg") then fail("submitted despite the tempfail") end

  local f = io.open(SPOOL .. "/REPLY", "w")
  f:write("451 4.3.0 queue database unavailable\n")
  f:close()
  conn = expect("outbound when the relay refuses the submission (451) is tempfailed",
    { auth = "bob", from = "bob@b.test", rcpts = { "alice@a.test" }, message = DATA .. "/out.eml" },
    "eom", "tempfail", "relay-unavailable")
  if mt.eom_check(conn, MT_RCPTDELETE, "<alice@a.test>") then fail("a recipient deleted after a 451") end
  os.remove(SPOOL .. "/REPLY")

  local big = {}
  for i = 1, 1200 do big[#big + 1] = string.format("line %04d of a message larger than one keyvault request frame\r\n", i) end
  local ofields = parse_message(DATA .. "/out.eml")
  conn = expect("outbound larger than one keyvault frame is signed by streaming and submitted",
    { auth = "bob", from = "bob@b.test", rcpts = { "alice@a.test" }, fields = ofields,
      body = table.concat(big) }, "eom", SMFIR_DISCARD)
  if not mt.eom_check(conn, MT_RCPTDELETE, "<alice@a.test>") then fail("big: alice not deleted") end

  conn = expect("a sender without an account is not converted",
    { auth = "nobody", from = "nobody@b.test", rcpts = { "alice@a.test" }, message = DATA .. "/out.eml" },
    "eom", SMFIR_ACCEPT)
  if mt.eom_check(conn, MT_RCPTDELETE, "<alice@a.test>") then fail("recipient deleted for a non-account") end
end)
