-- dime-milter with a relaxed local policy (on-no-signet = accept, on-verify-failure = accept,
-- on-bogus = accept, on-dns-error = reject, outbound-require-dime = nodime2.test): what
-- "accept" may and may not do.
dofile(DATA .. "/common.lua")
start_filter()

run(function()
  local conn = expect("on-no-signet accept: a recipient without DIME goes as legacy SMTP",
    { auth = "bob", from = "bob@b.test", rcpts = { "carol@nodime.test" }, message = DATA .. "/out.eml" },
    "eom", SMFIR_ACCEPT)
  if mt.eom_check(conn, MT_RCPTDELETE, "<carol@nodime.test>") then fail("legacy recipient deleted") end
  local _, obody = parse_message(DATA .. "/out.eml")
  local davefrom = with_from(DATA .. "/out.eml", "<dave@b.test>")
  conn = expect("on-no-signet accept: a Paranoid sender's plain message to a domain without DIME goes as legacy SMTP",
    { auth = "dave", from = "dave@b.test", rcpts = { "carol@nodime.test" }, fields = davefrom, body = obody },
    "eom", SMFIR_ACCEPT)
  expect("on-no-signet accept: a Paranoid sender's own D/MIME for a domain without DIME: 550 5.7.1",
    { auth = "dave", from = "dave@b.test", rcpts = { "carol@nodime.test" },
      message = DATA .. "/own-dave.eml" }, "eom", "reject",
    { ".7.1", "author-made D/MIME goes only to a recipient at another DIME domain" })
  expect("on-no-signet accept never lets a Paranoid sender's plain message reach a DIME recipient",
    { auth = "dave", from = "dave@b.test", rcpts = { "carol@nodime.test", "alice@a.test" }, fields = davefrom,
      body = obody }, "eom", "reject", not_trustful("dave@b.test", "paranoid"))
  expect("outbound-require-dime: no legacy SMTP for a listed domain",
    { auth = "bob", from = "bob@b.test", rcpts = { "x@nodime2.test" }, message = DATA .. "/out.eml" },
    "eom", "tempfail", "no-signet")
  expect("on-bogus accept never downgrades outbound mail",
    { auth = "bob", from = "bob@b.test", rcpts = { "eve@bogus.test" }, message = DATA .. "/out.eml" },
    "eom", "tempfail", "bogus")
  expect("on-dns-error reject rejects",
    { auth = "bob", from = "bob@b.test", rcpts = { "t@slow.test" }, message = DATA .. "/out.eml" },
    "eom", "reject", "dns-error")
  expect("no-such-user: the unknown user of a strict domain gets 550 5.1.1 at RCPT, whatever on-no-signet says",
    { auth = "bob", from = "bob@b.test", rcpts = { "alice@a.test", "nobody@strict.test" },
      message = DATA .. "/out.eml" }, "rcpt", "reject",
    { ".1.1", "a recipient's DIME domain has no such user: its DNSSEC-signed record says pol=strict and its verified DIME server has no signet for that address" })
  expect("no signet at a strict domain under an insecure record is no proof: 451 4.7.1 at end of message",
    { auth = "bob", from = "bob@b.test", rcpts = { "erin@strict.test" }, message = DATA .. "/out.eml" },
    "eom", "tempfail",
    { ".7.1", "a recipient's domain publishes the strict DIME policy pol=strict and has no DIME signet for that address: the message is not sent as plain SMTP" })
  expect("a client neither authenticated nor trusted is not looked up at RCPT",
    { ip = "192.0.2.7", from = "bob@b.test", rcpts = { "nobody@strict.test" }, message = DATA .. "/out.eml" },
    "eoh", SMFIR_ACCEPT)
  conn = expect("on-verify-failure accept: a tampered wrapper is delivered marked dime=fail",
    { ip = "127.0.0.1", from = "alice@a.test", rcpts = { "bob@b.test" },
      message = DATA .. "/wrap-tampered.eml" }, "eom", SMFIR_ACCEPT)
  if mt.eom_check(conn, MT_BODYCHANGE) then fail("tampered wrapper's body replaced") end
  local ar = mt.getheader(conn, "Authentication-Results", 0)
  if ar == nil or not ar:find("dime=fail", 1, true) or ar:find("dime=pass", 1, true) then
    fail("no dime=fail Authentication-Results: " .. tostring(ar))
  end
  mt.echo("  A-R:" .. ar)
  conn = expect("a forged Authentication-Results with our authserv-id is removed",
    { ip = "127.0.0.1", from = "alice@a.test", rcpts = { "bob@b.test" },
      message = DATA .. "/wrap-tampered-ar.eml" }, "eom", SMFIR_ACCEPT)
  if not mt.eom_check(conn, MT_HDRDELETE, "Authentication-Results") then fail("forged A-R kept") end
end)
