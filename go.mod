module github.com/wagate/wagate

go 1.26.8

require github.com/caarlos0/env/v11 v11.3.1
