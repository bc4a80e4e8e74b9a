-- wrk script: cycles every connection through a mix of catalogue reads given as
-- arguments (paths), so listing, search and detail are all under load at once.
local paths = {}
local n = 0

function init(args)
  for i, p in ipairs(args) do
    paths[i] = p
  end
  if #paths == 0 then
    paths[1] = "/api/models"
  end
end

function request()
  n = n + 1
  return wrk.format("GET", paths[(n % #paths) + 1])
end
