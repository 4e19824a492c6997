import Foundation
@testable import StetFleet
import Testing

/// etcd's answers about leases and transactions are read as data from outside: a TTL out of
/// bounds is refused, never carried into the arithmetic of a lease's deadline.
@Suite struct EtcdAnswerTests {
    @Test func aGrantIsReadWithItsTTLBounded() throws {
        #expect(try EtcdClient.granted(["ID": "42", "TTL": "3"], asked: 3) == (42, 3))
        // No TTL named: the one asked for.
        #expect(try EtcdClient.granted(["ID": "42"], asked: 5) == (42, 5))
        for ttl in ["3601", "9223372036854775807", "99999999999999999999999", "x", "-"] {
            #expect(throws: EtcdClient.Failure.self, "\(ttl)") { try EtcdClient.granted(["ID": "42", "TTL": ttl], asked: 3) }
        }
        #expect(throws: EtcdClient.Failure.self) { try EtcdClient.granted(["ID": "0", "TTL": "3"], asked: 3) }
        #expect(throws: EtcdClient.Failure.self) { try EtcdClient.granted(["TTL": "3"], asked: 3) }
    }

    @Test func aKeepAliveSaysTheTTLOrThatTheLeaseIsGone() throws {
        #expect(try EtcdClient.renewed(["result": ["ID": "42", "TTL": "3"]]) == 3)
        #expect(try EtcdClient.renewed(["result": ["ID": "42"]]) == nil)
        #expect(try EtcdClient.renewed(["result": ["ID": "42", "TTL": "0"]]) == nil)
        #expect(throws: EtcdClient.Failure.self) { try EtcdClient.renewed(["result": ["TTL": "86400"]]) }
        #expect(try EtcdClient.remaining(["ID": "42", "TTL": "-1"]) == nil)
        #expect(try EtcdClient.remaining(["ID": "42", "TTL": "0"]) == 0)
        #expect(try EtcdClient.remaining(["ID": "42", "TTL": "2"]) == 2)
    }

    @Test func aTransactionAnswerNamesTheBranchAndWhatItRead() throws {
        let body: [String: Any] = [
            "header": ["revision": "12"], "succeeded": false,
            "responses": [["response_range": ["kvs": [["key": Data("/stet/a".utf8).base64EncodedString(),
                                                       "value": Data("v".utf8).base64EncodedString(), "mod_revision": "7"]]]]],
        ]
        let answer = try EtcdClient.transactionAnswer(body)
        #expect(!answer.succeeded && answer.revision == 12)
        #expect(answer.read.map(\.key) == ["/stet/a"])
        #expect(throws: (any Error).self) { try EtcdClient.transactionAnswer(["succeeded": true]) }
    }
}
