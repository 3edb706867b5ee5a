-- dime-milter with a sender-login-map (test_milter.sh writes it): the login dave may send as
-- bob@b.test, and, the entry deciding alone, bob's own login no longer may; @b.test entries
-- do not apply to an address with an entry of its own.
dofile(DATA .. "/common.lua")
start_filter()

run(function()
  local conn = expect("a login the map grants the sender: signed and submitted",
    { auth = "dave", from = "bob@b.test", rcpts = { "alice@a.test" }, message = DATA .. "/out.eml",
      qid = "MAPQID1" }, "eom", SMFIR_DISCARD)
  if not mt.eom_check(conn, MT_RCPTDELETE, "<alice@a.test>") then fail("alice not deleted") end
  expect("the sender's own login, not in its map entry: 550 5.7.1",
    { auth = "bob", from = "bob@b.test", rcpts = { "alice@a.test" }, message = DATA .. "/out.eml" },
    "eoh", "reject", not_owner("bob", "bob@b.test"))
  expect("an address without an entry falls back to @domain: its login is refused",
    { auth = "dave", from = "dave@b.test", rcpts = { "alice@a.test" },
      fields = with_from(DATA .. "/out.eml", "<dave@b.test>"), body = select(2, parse_message(DATA .. "/out.eml")) },
    "eoh", "reject", not_owner("dave", "dave@b.test"))
  expect("the @domain entry's login may send as any address of the domain",
    { auth = "b-admin", from = "dave@b.test", rcpts = { "alice@a.test" },
      fields = with_from(DATA .. "/out.eml", "<dave@b.test>"), body = select(2, parse_message(DATA .. "/out.eml")) },
    "eom", "reject", not_trustful("dave@b.test", "paranoid"))
end)
