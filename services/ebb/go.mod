module github.com/ebb-etl/ebb/services/ebb

go 1.26.0

require (
	github.com/ebb-etl/ebb/libs v0.0.0
	github.com/ebb-etl/ebb/proto v0.0.0
	github.com/ebb-etl/ebb/services/admin v0.0.0
	github.com/ebb-etl/ebb/services/delivery v0.0.0
	github.com/ebb-etl/ebb/services/differ v0.0.0
	github.com/ebb-etl/ebb/services/extractor v0.0.0
	github.com/ebb-etl/ebb/services/reporting v0.0.0
	github.com/ebb-etl/ebb/services/scheduler v0.0.0
	github.com/ebb-etl/ebb/services/transformer v0.0.0
)

replace (
	github.com/ebb-etl/ebb/libs => ../../libs
	github.com/ebb-etl/ebb/proto => ../../proto
	github.com/ebb-etl/ebb/services/admin => ../admin
	github.com/ebb-etl/ebb/services/delivery => ../delivery
	github.com/ebb-etl/ebb/services/differ => ../differ
	github.com/ebb-etl/ebb/services/extractor => ../extractor
	github.com/ebb-etl/ebb/services/reporting => ../reporting
	github.com/ebb-etl/ebb/services/scheduler => ../scheduler
	github.com/ebb-etl/ebb/services/transformer => ../transformer
)
