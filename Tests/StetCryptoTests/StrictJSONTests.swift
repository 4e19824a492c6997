import Foundation
import StetCrypto
import Testing

/// Signed JSON must mean one thing: well-formed, no key twice in an object (however spelt).
@Suite struct StrictJSONTests {
    @Test(arguments: [
        #"{}"#, #"[]"#, #"{"a":1,"b":[1,2,{"a":2}],"c":{"a":null}}"#, #" {"a" : "x\"y" , "b":true,"c":false} "#,
        #"{"e":-0.5e+10,"f":0,"g":"\u00e9\ud83d\ude00"}"#, #""just a string""#,
    ])
    func wellFormedJSONWithUniqueKeysPasses(json: String) throws {
        try StrictJSON.checkUniqueKeys(Data(json.utf8))
    }

    @Test(arguments: [
        (#"{"version":1,"version":9}"#, "appears twice"),
        (#"{"a":{"x":1,"x":2}}"#, "appears twice"),
        (#"{"a":1,"\u0061":2}"#, "appears twice"),
        (#"{"a\/b":1,"a/b":2}"#, "appears twice"),
        // One key to Swift (canonical equivalence), two to other readers.
        (#"{"K.yaml":1,"\u212A.yaml":2}"#, "appears twice"),
        ("{\"caf\u{E9}\":1,\"cafe\u{301}\":2}", "appears twice"),
        ("{" + (0..<20).map { "\"k\($0)\":0," }.joined() + "\"\u{212B}\":1,\"A\u{30A}\":2}", "appears twice"),
        (#"{"a":1,}"#, "expected a key"),
        (#"{"a":01}"#, "expected ',' or '}'"),
        (#"{"a":"\ud800"}"#, "lone surrogate"),
        (#"{"a":1} x"#, "after the JSON value"),
        ("{\"a\":\"\u{1}\"}", "control character"),
        (String(repeating: "[", count: 100) + String(repeating: "]", count: 100), "nested deeper"),
    ])
    func everythingElseIsRefused(json: String, message: String) {
        #expect {
            try StrictJSON.checkUniqueKeys(Data(json.utf8))
        } throws: { error in
            (error as? StrictJSON.Failure)?.message.contains(message) == true
        }
    }

    @Test func aLargeObjectWithOneDuplicateIsFound() {
        var keys = (0..<50_000).map { "\"k\($0)\":\($0)" }
        keys.append("\"k49999\":0")
        #expect(throws: StrictJSON.Failure.self) { try StrictJSON.checkUniqueKeys(Data(("{" + keys.joined(separator: ",") + "}").utf8)) }
        keys.removeLast()
        #expect(throws: Never.self) { try StrictJSON.checkUniqueKeys(Data(("{" + keys.joined(separator: ",") + "}").utf8)) }
    }

    /// Past 16 members an object's keys are compared through a set: a duplicate is found there as
    /// in a small object, whichever spelling each has (escaped, decomposed, a compatibility
    /// character) and on which side of the switch each falls, when checking and when parsing.
    @Test(arguments: [
        (#""a""#, #""\u0061""#),
        (#""K""#, #""\u212A""#),
        (#""\u00e9""#, "\"e\u{301}\""),
        ("\"e\u{301}\"", #""\u00e9""#),
        (#""k3""#, #""k\u0033""#),
    ])
    func aDuplicateInALargeObjectIsFoundInEverySpelling(first: String, second: String) throws {
        let filler = (0..<30).map { "\"f\($0)\":0" }
        for (before, between) in [(0, 20), (5, 12), (20, 5)] {
            let members = filler.prefix(before) + ["\(first):1"] + filler.dropFirst(before).prefix(between) + ["\(second):2"]
            let json = Data(("{" + members.joined(separator: ",") + "}").utf8)
            #expect(throws: StrictJSON.Failure.self, "\(before), \(between)") { try StrictJSON.checkUniqueKeys(json) }
            #expect(throws: StrictJSON.Failure.self, "\(before), \(between)") { try StrictJSON.parse(json) }
        }
        let unique = Data(("{" + (filler + ["\(first):1"]).joined(separator: ",") + "}").utf8)
        guard case .object(let parsed) = try StrictJSON.parse(unique) else {
            Issue.record("expected an object")
            return
        }
        #expect(parsed.count == 31)
        #expect(parsed.map(\.key).prefix(3) == ["f0", "f1", "f2"])
    }
}
