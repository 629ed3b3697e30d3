module github.com/ebb-etl/ebb/services/admin

go 1.26.0

require github.com/ebb-etl/ebb/libs v0.0.0

replace github.com/ebb-etl/ebb/libs => ../../libs
