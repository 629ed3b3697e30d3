module github.com/ebb-etl/ebb/proto

go 1.26.0
