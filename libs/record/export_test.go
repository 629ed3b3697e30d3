package record

// ParseJSON lets the tests hold the parser to encoding/json.
var ParseJSON = parseJSON
