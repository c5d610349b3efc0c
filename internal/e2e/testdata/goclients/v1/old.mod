module imdsv2.test/goclients/v1

go 1.24

require github.com/aws/aws-sdk-go v1.25.37

require (
	github.com/jmespath/go-jmespath v0.0.0-20180206201540-c2b33e8439af // indirect
	github.com/stretchr/testify v1.12.1 // indirect
)
