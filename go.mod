module github.com/seed80f6b3e8/httpsrv

go 1.25.0

require (
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
	go.yaml.in/yaml/v3 v3.0.5
	golang.org/x/net v0.58.0
)

require golang.org/x/text v0.41.0 // indirect
