-- ARGV: B ttl us : admit nothing for us from now (a longer backoff in force stays)
backoff(tonumber(ARGV[3]))
return 1
