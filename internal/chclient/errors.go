package chclient

import (
	"errors"
	"net/http"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// Class says what a caller should do about a failed ClickHouse request.
type Class int

const (
	// Transient: the server or the network will recover (a timeout, a
	// memory limit, too many queries, a server restarting, a broken
	// connection). Retry the same request with capped backoff.
	Transient Class = iota
	// Setup: the deployment is wrong (a table or database missing, access
	// denied, the server read-only). Nothing in the request is at fault and
	// another request would fail the same way, so retry, but say that an
	// operator has to act.
	Setup
	// Permanent: the server refused this request for what it contains (a
	// value it cannot store, too many partitions in one insert block, a
	// query too large). Retrying the same request fails again; split it or
	// give up on it.
	Permanent
)

func (c Class) String() string {
	switch c {
	case Transient:
		return "transient"
	case Setup:
		return "setup"
	case Permanent:
		return "permanent"
	}
	return "unknown"
}

// ClickHouse exception codes (src/Common/ErrorCodes.cpp) that Classify
// reads as Transient or Setup. Every other exception code is Permanent:
// the server understood the request and refused it.
var (
	transientCodes = map[int32]string{
		3:    "UNEXPECTED_END_OF_FILE",
		32:   "ATTEMPT_TO_READ_AFTER_EOF",
		159:  "TIMEOUT_EXCEEDED",
		160:  "TOO_SLOW",
		173:  "CANNOT_ALLOCATE_MEMORY",
		198:  "DNS_ERROR",
		202:  "TOO_MANY_SIMULTANEOUS_QUERIES",
		203:  "NO_FREE_CONNECTION",
		209:  "SOCKET_TIMEOUT",
		210:  "NETWORK_ERROR",
		236:  "ABORTED",
		241:  "MEMORY_LIMIT_EXCEEDED",
		242:  "TABLE_IS_READ_ONLY",
		252:  "TOO_MANY_PARTS", // unless it is about one insert block: see Classify
		279:  "ALL_CONNECTION_TRIES_FAILED",
		285:  "TOO_FEW_LIVE_REPLICAS",
		286:  "UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE",
		319:  "UNKNOWN_STATUS_OF_INSERT",
		394:  "QUERY_WAS_CANCELLED",
		425:  "SYSTEM_ERROR",
		439:  "CANNOT_SCHEDULE_TASK",
		999:  "KEEPER_EXCEPTION",
		1000: "POCO_EXCEPTION",
		1001: "STD_EXCEPTION",
		1002: "UNKNOWN_EXCEPTION",
	}
	setupCodes = map[int32]string{
		16:  "NO_SUCH_COLUMN_IN_TABLE",
		60:  "UNKNOWN_TABLE",
		81:  "UNKNOWN_DATABASE",
		164: "READONLY",
		192: "UNKNOWN_USER",
		193: "WRONG_PASSWORD",
		194: "REQUIRED_PASSWORD",
		195: "IP_ADDRESS_NOT_ALLOWED",
		497: "ACCESS_DENIED",
		516: "AUTHENTICATION_FAILED",
	}
)

// Classify says whether err, returned by a ClickHouse request, is worth
// retrying, and returns the server's exception when there is one. An error
// without an exception (a refused connection, a timeout, a context
// deadline, an HTTP 5xx from a proxy) is Transient.
//
// Code 252 is both "too many parts" in a partition (merges catch up: retry)
// and "too many partitions for single INSERT block" (the same block always
// fails: Permanent); the message tells them apart.
func Classify(err error) (Class, *clickhouse.Exception) {
	if err == nil {
		return Transient, nil
	}
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		switch {
		case ex.Code == 252 && strings.Contains(ex.Message, "partitions for single INSERT block"):
			return Permanent, ex
		case transientCodes[ex.Code] != "":
			return Transient, ex
		case setupCodes[ex.Code] != "":
			return Setup, ex
		}
		return Permanent, ex
	}
	var he *clickhouse.HTTPError
	if errors.As(err, &he) && he.StatusCode == http.StatusRequestEntityTooLarge {
		return Permanent, nil
	}
	return Transient, nil
}
