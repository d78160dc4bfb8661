module rl.local/rl

go 1.19
