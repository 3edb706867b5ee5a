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

  -- no silent plaintext: a sender the gateway cannot sign for never reaches a DIME recipient
  local spooled = spool_count()
  local nofrom = with_from(DATA .. "/out.eml", "<nobody@b.test>")
  local _, obody = parse_message(DATA .. "/out.eml")
  conn = expect("a sender without an account to a DIME recipient: 550 5.7.1, nothing submitted",
    { auth = "nobody", from = "nobody@b.test", rcpts = { "alice@a.test" }, fields = nofrom, body = obody,
      qid = "NOACCT1" }, "eom", "reject", no_account("nobody@b.test"))
  if mt.eom_check(conn, MT_RCPTDELETE, "<alice@a.test>") then fail("recipient deleted for a non-account") end
  if spool_count() ~= spooled then fail("submitted for a non-account") end
  expect("a sender without an account to a local recipient only: unchanged",
    { auth = "nobody", from = "nobody@b.test", rcpts = { "carol@b.test" }, fields = nofrom, body = obody },
    "eom", SMFIR_ACCEPT)
  expect("a sender without an account to a domain without DIME follows on-no-signet (tempfail)",
    { auth = "nobody", from = "nobody@b.test", rcpts = { "carol@nodime.test" }, fields = nofrom, body = obody },
    "eom", "tempfail", "no-signet")
  local davefrom = with_from(DATA .. "/out.eml", "Dave <dave@b.test>")
  conn = expect("a Paranoid sender's plain message to a DIME recipient: 550 5.7.1",
    { auth = "dave", from = "dave@b.test", rcpts = { "alice@a.test", "carol@b.test" }, fields = davefrom,
      body = obody }, "eom", "reject", not_trustful("dave@b.test", "paranoid"))
  if mt.eom_check(conn, MT_RCPTDELETE, "<carol@b.test>") then fail("a recipient deleted on reject") end
  if spool_count() ~= spooled then fail("submitted for a sender that cannot sign") end
  conn = expect("a Paranoid sender's own D/MIME goes to the relay as it is, for its one recipient",
    { auth = "dave", from = "dave@b.test", rcpts = { "alice@a.test" },
      message = DATA .. "/own-dave.eml", qid = "OWNQID1" }, "eom", SMFIR_DISCARD)
  if mt.eom_check(conn, MT_BODYCHANGE) then fail("the author-made wrapper changed") end
  local sub = io.popen("ls -1t '" .. SPOOL .. "' | grep 'alice@a.test.dmsg$' | head -1"):read("*l")
  if sub == nil or read_file(SPOOL .. "/" .. sub) ~= read_file(DATA .. "/../own-dave.dmsg") then
    fail("the submitted bytes are not the client's D/MIME: " .. tostring(sub))
  end
  spooled = spool_count()
  local one = "author-made D/MIME is made for one recipient: send one message per recipient, with that recipient alone in the envelope"
  expect("a Paranoid sender's own D/MIME for two DIME recipients: 550 5.7.1",
    { auth = "dave", from = "dave@b.test", rcpts = { "alice@a.test", "al@a.test" },
      message = DATA .. "/own-dave.eml" }, "eom", "reject", { ".7.1", one })
  expect("a Paranoid sender's own D/MIME for a DIME and a local recipient: 550 5.7.1",
    { auth = "dave", from = "dave@b.test", rcpts = { "alice@a.test", "carol@b.test" },
      message = DATA .. "/own-dave.eml" }, "eom", "reject", { ".7.1", one })

  if spool_count() ~= spooled then fail("submitted for a sender that cannot sign") end

  -- sender binding, without a sender-login-map: the login is the address or its local part
  expect("the login bob@b.test owns bob@b.test",
    { auth = "bob@b.test", from = "bob@b.test", rcpts = { "alice@a.test" }, message = DATA .. "/out.eml",
      qid = "BIND1" }, "eom", SMFIR_DISCARD)
  spooled = spool_count()
  conn = expect("the login dave sending as bob@b.test: 550 5.7.1 at end of header, nothing signed",
    { auth = "dave", from = "bob@b.test", rcpts = { "alice@a.test" }, message = DATA .. "/out.eml",
      qid = "BIND2" }, "eoh", "reject", not_owner("dave", "bob@b.test"))
  for _, rcpt in ipairs({ "carol@b.test", "x@ext.test" }) do
    expect("the login dave sending as bob@b.test to " .. rcpt .. ": refused as well",
      { auth = "dave", from = "bob@b.test", rcpts = { rcpt }, message = DATA .. "/out.eml" },
      "eoh", "reject", not_owner("dave", "bob@b.test"))
  end
  local carolfrom = with_from(DATA .. "/out.eml", "Carol <carol@b.test>")
  expect("From: carol@ with MAIL FROM bob@: 550 5.7.1, nothing signed",
    { auth = "bob", from = "bob@b.test", rcpts = { "alice@a.test" }, fields = carolfrom, body = obody },
    "eom", "reject", from_mismatch("bob@b.test"))
  expect("From: carol@ from trusted-networks: 550 5.7.1 as well",
    { ip = "127.0.0.1", from = "bob@b.test", rcpts = { "alice@a.test" }, fields = carolfrom, body = obody },
    "eom", "reject", from_mismatch("bob@b.test"))
  expect("a From field with two addresses is not signed",
    { auth = "bob", from = "bob@b.test", rcpts = { "alice@a.test" },
      fields = with_from(DATA .. "/out.eml", "Bob <bob@b.test>, Carol <carol@b.test>"), body = obody },
    "eom", "reject", from_mismatch("bob@b.test"))
  expect("From: carol@ to a local recipient only: nothing is signed, unchanged",
    { auth = "bob", from = "bob@b.test", rcpts = { "carol@b.test" }, fields = carolfrom, body = obody },
    "eom", SMFIR_ACCEPT)
  if spool_count() ~= spooled then fail("a refused message was submitted") end

  -- Authentication-Results with our authserv-id: deleted on every path, others stay
  local forged = { { name = "Authentication-Results", value = " " .. AUTHSERV .. "; dime=pass header.from=x@ext.test" } }
  conn = expect("mail that is not converted: our forged A-R is deleted",
    { from = "x@ext.test", rcpts = { "bob@b.test" }, fields = with_fields(DATA .. "/plain.eml", forged),
      body = "not for DIME\r\n" }, "eom", SMFIR_ACCEPT)
  if not mt.eom_check(conn, MT_HDRDELETE, "Authentication-Results") then fail("forged A-R kept (unchanged path)") end
  local others = { { name = "Authentication-Results", value = " mx.other.test; dkim=pass" },
                   { name = "Authentication-Results", value = " (comment) MX.B.TEST 1; dime=pass" } }
  conn = expect("a wrapper for a Paranoid recipient: our forged A-R is deleted, nothing else",
    { ip = "127.0.0.1", from = "alice@a.test", rcpts = { "dave@b.test" },
      fields = with_fields(DATA .. "/wrap-dave.eml", others), body = select(2, parse_message(DATA .. "/wrap-dave.eml")) },
    "eom", SMFIR_ACCEPT)
  if not mt.eom_check(conn, MT_HDRDELETE, "Authentication-Results") then fail("forged A-R kept (untouched wrapper)") end
  if mt.eom_check(conn, MT_BODYCHANGE) then fail("untouched wrapper's body changed") end
  conn = expect("outbound with a local recipient: our forged A-R is deleted from Postfix's copy",
    { auth = "bob", from = "bob@b.test", rcpts = { "alice@a.test", "carol@b.test" },
      fields = with_fields(DATA .. "/out.eml", forged), body = obody, qid = "ARQID1" }, "eom", SMFIR_ACCEPT)
  if not mt.eom_check(conn, MT_HDRDELETE, "Authentication-Results") then fail("forged A-R kept (outbound)") end
  conn = expect("mail without such a field is accepted at end of header",
    { from = "x@ext.test", rcpts = { "bob@b.test" },
      fields = with_fields(DATA .. "/plain.eml", { { name = "Authentication-Results", value = " mx.other.test; dkim=pass" } }),
      body = "not for DIME\r\n" }, "eoh", SMFIR_ACCEPT)
end)
