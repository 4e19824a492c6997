import Foundation
import StetCore
import StetCrypto
import StetManifest
import StetState
import Testing

/// `ReleaseIndex.decode` reads the payload's fields from one strict scan. These tests hold it
/// to what a `Decodable` index read by Foundation's `JSONDecoder` (after the same strict scan)
/// accepts and yields, payload by payload.
@Suite struct ReleaseIndexDecodingTests {
    static let digest = "sha256:" + String(repeating: "ab", count: 32)
    static let times = #""created":"2026-11-01T00:00:00Z","expires":"2027-11-01T00:00:00Z""#

    /// The index Foundation's decoder yields, with the checks `decode` adds; nil when either
    /// refuses it.
    static func reference(_ payload: Data) -> ReleaseIndex? {
        guard (try? StrictJSON.checkUniqueKeys(payload)) != nil,
            let index = try? JSONCoding.decoder.decode(ReleaseIndex.self, from: payload),
            index.type == ReleaseIndex.type, index.version >= 1, index.version < Int.max,
            index.files.values.allSatisfy(ReleaseIndex.isDigest)
        else { return nil }
        return index
    }

    static let payloads: [String] = [
        #"{"type":"stet.release/v1","version":3,\#(times),"files":{"a.yaml":"\#(digest)","b/c.yml":"\#(digest)"}}"#,
        #"{"files":{},"version":1,\#(times),"type":"stet.release/v1"}"#,
        #"{"type":"stet.release/v1","version":1,\#(times),"files":{},"extra":[1,{"x":null},true,"y",-2.5e3]}"#,
        #"  {"type":"stet.release/v1","version":1,\#(times),"files":{"\u0061.yaml":"\#(digest)"}}  "#,
        #"{"type":"stet.release/v1","version":1,\#(times),"files":{"caf\u00e9.yaml":"\#(digest)","cafe\u0301.yaml":"\#(digest)"}}"#,
        #"{"type":"stet.release/v1","version":1,\#(times),"files":{"cafe\u0301.yaml":"\#(digest)"}}"#,
        #"{"type":"stet.release/v1","version":1,\#(times),"files":{"a.yaml":"\#(digest)","a.yaml":"\#(digest)"}}"#,
        #"{"type":"stet.release/v1","version":1,"version":2,\#(times),"files":{}}"#,
        #"{"type":"stet.release/v1",\#(times),"files":{}}"#,
        #"{"version":1,\#(times),"files":{}}"#,
        #"{"type":"stet.release/v1","version":1,"expires":"2027-11-01T00:00:00Z","files":{}}"#,
        #"{"type":"stet.release/v1","version":1,\#(times)}"#,
        #"{"type":"stet.release/v2","version":1,\#(times),"files":{}}"#,
        #"{"type":"stet.release/v1","version":"1",\#(times),"files":{}}"#,
        #"{"type":"stet.release/v1","version":1.5,\#(times),"files":{}}"#,
        #"{"type":"stet.release/v1","version":0,\#(times),"files":{}}"#,
        #"{"type":"stet.release/v1","version":2.0,\#(times),"files":{}}"#,
        #"{"type":"stet.release/v1","version":2e0,\#(times),"files":{}}"#,
        #"{"type":"stet.release/v1","version":20E-1,\#(times),"files":{}}"#,
        #"{"type":"stet.release/v1","version":-4,\#(times),"files":{}}"#,
        #"{"type":"stet.release/v1","version":99999999999999999999,\#(times),"files":{}}"#,
        #"{"type":"stet.release/v1","version":1e400,\#(times),"files":{}}"#,
        #"{"type":"stet.release/v1","version":null,\#(times),"files":{}}"#,
        #"{"type":"stet.release/v1","version":true,\#(times),"files":{}}"#,
        #"{"type":7,"version":1,\#(times),"files":{}}"#,
        #"{"type":"stet.release/v1","version":1,"created":"yesterday","expires":"2027-11-01T00:00:00Z","files":{}}"#,
        #"{"type":"stet.release/v1","version":1,"created":1,"expires":"2027-11-01T00:00:00Z","files":{}}"#,
        #"{"type":"stet.release/v1","version":1,\#(times),"files":[]}"#,
        #"{"type":"stet.release/v1","version":1,\#(times),"files":{"a.yaml":7}}"#,
        #"{"type":"stet.release/v1","version":1,\#(times),"files":{"a.yaml":null}}"#,
        #"{"type":"stet.release/v1","version":1,\#(times),"files":{"a.yaml":"sha256:00"}}"#,
        #"{"type":"stet.release/v1","version":1,\#(times),"files":{"a.yaml":"\#(digest)"}} x"#,
        #"{"type":"stet.release/v1","version":1,\#(times),"files":{"a.yaml":"\#(digest)",}}"#,
        #"[{"type":"stet.release/v1","version":1,\#(times),"files":{}}]"#,
        #""stet.release/v1""#,
        "",
        "{}",
    ]

    @Test(arguments: payloads)
    func decodesAsFoundationWould(payload: String) throws {
        let bytes = Data(payload.utf8)
        let expected = Self.reference(bytes)
        let decoded = try? ReleaseIndex.decode(bytes)
        #expect(decoded == expected, "\(payload)")
        if let decoded {
            // The paths are kept as written (no normal form), as the name checks need them.
            #expect(decoded.files.keys.map { Array($0.utf8) }.sorted { $0.lexicographicallyPrecedes($1) }
                == expected!.files.keys.map { Array($0.utf8) }.sorted { $0.lexicographicallyPrecedes($1) })
        }
    }

    @Test func wholeNumbersAreReadAsADecoderReadsThem() {
        #expect(ReleaseIndex.wholeNumber("7") == 7)
        #expect(ReleaseIndex.wholeNumber("7.0") == 7)
        #expect(ReleaseIndex.wholeNumber("7e0") == 7)
        #expect(ReleaseIndex.wholeNumber("7.5") == nil)
        #expect(ReleaseIndex.wholeNumber("1e400") == nil)
        #expect(ReleaseIndex.wholeNumber("99999999999999999999") == nil)
    }

    @Test func messagesNameTheField() {
        func message(_ payload: String) -> String {
            do {
                _ = try ReleaseIndex.decode(Data(payload.utf8))
                return ""
            } catch {
                return error.message
            }
        }
        #expect(message(#"{"type":"stet.release/v1",\#(Self.times),"files":{}}"#).contains("missing field version"))
        #expect(message(#"{"type":"stet.release/v1","version":"1",\#(Self.times),"files":{}}"#).contains("version: expected a whole number"))
        #expect(message(#"{"type":"stet.release/v1","version":1,\#(Self.times),"files":{"a.yaml":7}}"#).contains("files.a.yaml: expected a string"))
        #expect(message(#"{"type":"stet.release/v1","version":1,"created":"x","expires":"y","files":{}}"#).contains("created: not an RFC 3339 time"))
        #expect(message(#"{"a":1,"a":2}"#).contains("appears twice"))
        // A duplicated key is quoted short and with its control characters escaped.
        let long = String(repeating: "k", count: 5000)
        let cut = message(#"{"\#(long)":1,"\#(long)":2}"#)
        #expect(cut.contains("appears twice") && cut.contains("(5000 bytes)") && cut.utf8.count < 400, "\(cut)")
        let escaped = message(#"{"a\u001b[2J":1,"a\u001b[2J":2}"#)
        #expect(escaped.contains("appears twice") && !escaped.contains("\u{1B}") && escaped.contains("\\u{1B}"), "\(escaped)")
    }
}
