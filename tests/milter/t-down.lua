-- dime-milter with one service unreachable (DOWN names it: keyvault or relay): every
-- conversion tempfails, mail that needs no conversion still passes.
dofile(DATA .. "/common.lua")
start_filter()

run(function()
  expect("mail from another domain passes (" .. DOWN .. " down)",
    { from = "x@ext.test", rcpts = { "bob@b.test" }, message = DATA .. "/plain.eml" }, "eoh", SMFIR_ACCEPT)
  local conn = expect("outbound is tempfailed (" .. DOWN .. " down)",
    { auth = "bob", from = "bob@b.test", rcpts = { "alice@a.test" }, message = DATA .. "/out.eml" },
    "eom", "tempfail", DOWN .. "-unavailable")
  if mt.eom_check(conn, MT_RCPTDELETE, "<alice@a.test>") then fail("recipient deleted") end
  expect("inbound is tempfailed (" .. DOWN .. " down)",
    { ip = "127.0.0.1", from = "alice@a.test", rcpts = { "bob@b.test" },
      message = DATA .. "/wrap-bob.eml" }, "eom", "tempfail", DOWN .. "-unavailable")
end)
