import Foundation
import StetCore
import StetManifest
import StetState
import StetTesting
import Testing

/// Numbers and names from outside: bounded, checked, never a trap.
@Suite struct BoundsTests {
    @Test(arguments: [
        ("365d", StetDuration.ParseError?.none), ("52w1d", nil), ("366d", .tooLong), ("52w2d", .tooLong),
        ("99999999999999999999d", .tooLong), ("99999999999999999999999999999999ms", .tooLong), ("100000000000d", .tooLong),
        ("1d1", .malformed), ("99999999999999999999x", .malformed),
    ] as [(String, StetDuration.ParseError?)])
    func durationsLongerThanTheMaximumAreTooLong(text: String, error: StetDuration.ParseError?) {
        switch StetDuration.parse(text) {
        case .success(let duration):
            #expect(error == nil)
            #expect(duration <= StetDuration.maximum)
        case .failure(let failure):
            #expect(failure == error)
        }
    }

    @Test func durationArithmeticSaturates() {
        #expect(StetDuration.seconds(.max).milliseconds == .max)
        #expect(StetDuration.seconds(.min).milliseconds == .min)
        #expect(StetDuration(seconds: .nan).milliseconds == 0)
        #expect(StetDuration(seconds: .infinity).milliseconds == .max)
        #expect(StetDuration(seconds: 1.5).milliseconds == 1500)
    }

    @Test(arguments: [
        (Double.nan, 0), (.infinity, Int32.max), (-.infinity, Int32.min), (1e300, Int32.max), (-1e300, Int32.min),
        (2_147_483_647.9, Int32.max), (2_147_483_646.9, 2_147_483_646), (-3.7, -3), (0, 0),
        // 30 days of milliseconds: what a 30-day timeout once asked poll(2) for.
        (30 * 86_400_000, Int32.max),
    ] as [(Double, Int32)])
    func int32FromAnyDoubleSaturates(value: Double, expected: Int32) {
        #expect(Int32(saturating: value) == expected)
    }

    @Test func wideIntegersSaturateToo() {
        #expect(Int64(saturating: 9.3e18) == .max)
        #expect(Int64(saturating: -9.3e18) == .min)
        #expect(Int(saturating: Double(1 << 53)) == 1 << 53)
        #expect(UInt32(saturating: -1) == 0)
        #expect(Int.max.addingSaturating(1) == .max)
        #expect(Int.min.addingSaturating(-1) == .min)
    }

    @Test func datesBeyondTheFormatAreWrittenAtItsBounds() {
        #expect(RFC3339.format(Date(timeIntervalSince1970: 1e300)) == "9999-12-31T23:59:59Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: -1e300)) == "0001-01-01T00:00:00Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: .nan)) == "1970-01-01T00:00:00Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: 1_800_000_000.5), milliseconds: true) == "2027-01-15T08:00:00.500Z")
    }

    @Test func anUnsetMonitorTimeoutIsTheDefaultOrTheIntervalWhicheverIsShorter() throws {
        func monitor(_ tail: String) throws -> Monitor? {
            let text = """
                apiVersion: stet/v1
                kind: Monitor
                metadata: {name: m}
                spec:
                  probe: {tcp: {address: "127.0.0.1:1"}}
                \(tail)
                """
            return try ManifestLoader.decode(files: [("m.yaml", Data(text.utf8))]).monitors["m"]
        }
        #expect(try monitor("  interval: 1s\n")?.timeout == .seconds(1))
        #expect(try monitor("  interval: 300ms\n")?.timeout == StetDuration(milliseconds: 300))
        #expect(try monitor("  interval: 1m\n")?.timeout == .seconds(5))
        #expect(try monitor("")?.timeout == .seconds(5))
        #expect(try monitor("  interval: 1s\n  timeout: 500ms\n")?.timeout == StetDuration(milliseconds: 500))
    }

    @Test func anUnsetHealthTimeoutIsTheDefaultOrTheIntervalWhicheverIsShorter() throws {
        func health(_ tail: String) throws -> Service.Health? {
            let text = ManifestDecodingTests.service + "  health:\n    tcp: {}\n" + tail
            return try ManifestLoader.decode(files: [("m.yaml", Data(text.utf8))]).services["web"]?.health
        }
        #expect(try health("    interval: 500ms\n")?.timeout == StetDuration(milliseconds: 500))
        #expect(try health("    interval: 1m\n")?.timeout == .seconds(2))
        #expect(try health("")?.timeout == .seconds(2))
    }

    // MARK: - Names that become paths

    @Test(arguments: [
        ("replicas/web/0.json", true), ("plans/applied/plan-0123456789abcdef", true), ("release.json", true),
        ("../x", false), ("plans/applied/../../../x/y", false), ("/etc/passwd", false), ("", false), ("a//b", false),
        ("a/./b", false), ("a/", false), ("a\u{0}b", false), (String(repeating: "x", count: 256), false),
        (String(repeating: "x", count: 255), true),
    ])
    func stateKeysStayInsideTheStateDirectory(key: String, ok: Bool) {
        #expect((StateKey.problem(key) == nil) == ok)
    }

    @Test func theFileStoreRefusesKeysThatLeaveIt() throws {
        let dir = TemporaryDirectory()
        let store = FileStateStore(root: dir.file("state"))
        for key in ["../outside.json", "a/../../outside.json", "/tmp/outside.json"] {
            #expect(throws: StateError.self) { try store.write(key, Data("x".utf8)) }
            #expect(throws: StateError.self) { try store.read(key) }
            #expect(throws: StateError.self) { try store.remove(key) }
        }
        #expect(throws: StateError.self) { try store.list("..") }
        #expect(!FileManager.default.fileExists(atPath: dir.file("outside.json")))
        try store.write("inside/ok.json", Data("x".utf8))
        #expect(try store.read("inside/ok.json") == Data("x".utf8))
        try store.remove("inside/ok.json")
        try store.remove("inside/ok.json")
        #expect(try store.read("inside/ok.json") == nil)
    }

    @Test func namesAndIndexesAreCheckedBeforeTheyMakeKeys() {
        #expect((try? StateKey.name("web-1")) == "web-1")
        #expect((try? StateKey.name("plan-0123456789abcdef")) == "plan-0123456789abcdef")
        for bad in ["..", "a/b", "Web", "", "-a", String(repeating: "a", count: 64), "a\u{0}"] {
            #expect(throws: StateError.self) { try StateKey.name(bad) }
        }
        #expect(throws: StateError.self) { try StateKey.index(-1) }
        #expect(throws: StateError.self) { try StateKey.index(Service.maximumReplicas) }
        #expect(StateKey.index(parsing: "12") == 12)
        for bad in ["+1", "01", "-1", "1000", "99999999999999999999", "x"] { #expect(StateKey.index(parsing: Substring(bad)) == nil) }
    }

    // MARK: - Resources, actions and plans from outside

    @Test func resourceIDsReadBackWhatTheyWrite() {
        let ids = [
            ResourceID(.service, "web"), ResourceID(.service, "web", replica: 0), ResourceID(.service, "a", replica: Service.maximumReplicas - 1),
            ResourceID(.backupPolicy, "data"), ResourceID(.monitor, "m"), ResourceID(.notifier, String(repeating: "n", count: 63)),
        ]
        for id in ids {
            #expect(ResourceID(parsing: id.description) == id, "\(id)")
            #expect(ResourceID(validating: id.kind, id.name, replica: id.replica) == id)
        }
        #expect(ResourceID(.service, "web", replica: 1).description == "Service/web#1")
        #expect(ResourceID(.service, "web", replica: 1).whole.description == "Service/web")
        #expect(ResourceID(.service, "web").replica(2) == ResourceID(parsing: "Service/web#2"))
    }

    @Test(arguments: [
        "", "/", "Service", "Service/", "/web", "service/web", "Service/Web", "Service/-web", "Service/web-", "Service/we_b",
        "Service/../x", "Service/web/x", "Service/" + String(repeating: "a", count: 64), "Service/web#", "Service/web#-1", "Service/web#+1",
        "Service/web#01", "Service/web#1000", "Service/web#99999999999999999999", "Service/web#1#2", "Service/web#1 ", "BackupPolicy/data#0",
        "Monitor/m#0", "Notifier/n#1", "Service/web\u{0}", "Service/wéb", "Service/web#١", "Secret/x", String(repeating: "Service/", count: 10_000),
    ])
    func resourceIDsOutOfFormAreRefused(text: String) {
        #expect(ResourceID(parsing: text) == nil)
    }

    @Test func replicasAreIndexesOfServicesOnly() {
        #expect(ResourceID(validating: .service, "web", replica: -1) == nil)
        #expect(ResourceID(validating: .service, "web", replica: Service.maximumReplicas) == nil)
        #expect(ResourceID(validating: .service, "web", replica: Int.max) == nil)
        #expect(ResourceID(validating: .backupPolicy, "data", replica: 0) == nil)
        #expect(ResourceID(validating: .service, "Web") == nil)
    }

    @Test func actionsAreReadOnlyForTheirKind() {
        for action in ServiceAction.allCases { #expect(ChangeAction(action.rawValue, on: .service) == .service(action)) }
        for action in BackupAction.allCases { #expect(ChangeAction(action.rawValue, on: .backupPolicy) == .backup(action)) }
        for action in MonitorAction.allCases { #expect(ChangeAction(action.rawValue, on: .monitor) == .monitor(action)) }
        #expect(ChangeAction("start-replica", on: .backupPolicy) == nil)
        #expect(ChangeAction("backup", on: .service) == nil)
        #expect(ChangeAction("register-monitor", on: .notifier) == nil)
        #expect(ChangeAction("Start-Replica", on: .service) == nil)
        #expect(ChangeAction("", on: .service) == nil)
    }

    /// A change of a saved plan as JSON, with the id its parts make unless `id` is given.
    static func change(_ resource: String, _ action: String, replica: Int?, id: String? = nil) -> [String: any Sendable] {
        var change: [String: any Sendable] = [
            "id": id ?? "\(resource)\(replica.map { "#\($0)" } ?? ""):\(action)", "resource": resource, "action": action,
            "cause": "config", "reason": ["code": "r", "message": "r"], "disruption": "none", "precondition": "sha256:00",
        ]
        if let replica { change["replica"] = replica }
        return change
    }

    /// A saved plan's payload.
    static func plan(id: String = "plan-0123456789abcdef", _ changes: [[String: any Sendable]], notices: [[String: any Sendable]] = []) -> Data {
        let plan: [String: Any] = [
            "formatVersion": 1, "id": id, "createdAt": "2026-01-01T00:00:00Z", "release": ["version": 1, "digest": "sha256:00"],
            "changes": changes, "notices": notices,
        ]
        return (try? JSONSerialization.data(withJSONObject: plan, options: [.sortedKeys])) ?? Data()
    }

    /// What reading `payload` as a plan says is out of form; nil when it is a plan.
    static func problem(_ payload: Data) -> String? {
        do {
            _ = try JSONDecoder().decode(Plan.self, from: payload)
            return nil
        } catch let problem as PlanFormError {
            return problem.description
        } catch {
            return "not a form problem: \(error)"
        }
    }

    @Test func aPlanInFormReadsBack() throws {
        let payload = Self.plan([
            Self.change("Service/web", "start-replica", replica: 0), Self.change("BackupPolicy/b", "remove-state", replica: nil),
            Self.change("Monitor/m", "register-monitor", replica: nil),
        ], notices: [["resource": "Service/web", "replica": 1, "mode": "warn", "reason": ["code": "r", "message": "r"]]])
        #expect(Self.problem(payload) == nil)
        let plan = try JSONDecoder().decode(Plan.self, from: payload)
        #expect(plan.changes.map(\.resource) == [
            ResourceID(.service, "web", replica: 0), ResourceID(.backupPolicy, "b"), ResourceID(.monitor, "m"),
        ])
        #expect(plan.changes.map(\.action) == [.service(.startReplica), .backup(.removeState), .monitor(.registerMonitor)])
        #expect(plan.notices.map(\.resource) == [ResourceID(.service, "web", replica: 1)])
    }

    @Test(arguments: [
        (plan(id: "../../../x/y", []), "the plan id \"../../../x/y\" is not plan- and 16 hex digits"),
        (plan(id: "plan-0123456789ABCDEF", []), "the plan id \"plan-0123456789ABCDEF\" is not plan- and 16 hex digits"),
        (plan([change("Service/../../x", "start-replica", replica: 0)]),
         "change \"Service/../../x#0:start-replica\": the resource \"Service/../../x\" is not Kind/name with a DNS label as the name"),
        (plan([change("Service/web#0", "start-replica", replica: 0)]),
         "change \"Service/web#0#0:start-replica\": the resource \"Service/web#0\" is not Kind/name with a DNS label as the name"),
        (plan([change("Notifier/n", "start-replica", replica: nil)]), "change \"Notifier/n:start-replica\": \"start-replica\" is not an action on Notifier"),
        (plan([change("BackupPolicy/b", "start-replica", replica: nil)]),
         "change \"BackupPolicy/b:start-replica\": \"start-replica\" is not an action on BackupPolicy"),
        (plan([change("Service/web", "restart-everything", replica: 0)]),
         "change \"Service/web#0:restart-everything\": \"restart-everything\" is not an action on Service"),
        (plan([change("Service/web", "start-replica", replica: Int.max)]),
         "change \"Service/web#9223372036854775807:start-replica\": a service change needs a replica from 0 to 999"),
        (plan([change("Service/web", "start-replica", replica: -1)]),
         "change \"Service/web#-1:start-replica\": a service change needs a replica from 0 to 999"),
        (plan([change("Service/web", "start-replica", replica: nil)]),
         "change \"Service/web:start-replica\": a service change needs a replica from 0 to 999"),
        (plan([change("Monitor/m", "register-monitor", replica: 1)]), "change \"Monitor/m#1:register-monitor\": only service changes name a replica"),
        (plan([change("Service/web", "start-replica", replica: 0, id: "../../x")]), "change \"../../x\": expected the id Service/web#0:start-replica"),
        (plan([], notices: [["resource": "Service/../x", "reason": ["code": "r", "message": "r"]]]),
         "the notice about \"Service/../x\" does not name a resource in form"),
        (plan([], notices: [["resource": "Service/web", "replica": 1000, "reason": ["code": "r", "message": "r"]]]),
         "the notice about \"Service/web\" does not name a resource in form"),
    ])
    func aPlanOutOfFormSaysWhat(payload: Data, problem: String) {
        #expect(Self.problem(payload) == problem)
    }

    /// Numbers beyond Int and texts of any size are refused by decoding, never a trap.
    @Test func hostileNumbersInAPlanAreRefused() throws {
        let change = #"{"id":"Service/web#0:start-replica","resource":"Service/web","action":"start-replica","replica":REPLICA,"#
            + #""cause":"config","reason":{"code":"r","message":"r"},"disruption":"none","precondition":"sha256:00"}"#
        for replica in ["99999999999999999999", "1e300", "-1e300", "0.5", "\"0\""] {
            let payload = #"{"formatVersion":1,"id":"plan-0123456789abcdef","createdAt":"x","release":{"version":1,"digest":"d"},"#
                + #""changes":["# + change.replacingOccurrences(of: "REPLICA", with: replica) + #"],"notices":[]}"#
            #expect(throws: (any Error).self) { try JSONDecoder().decode(Plan.self, from: Data(payload.utf8)) }
        }
        let long = String(repeating: "Service/", count: 100_000)
        #expect(Self.problem(Self.plan([Self.change(long, "start-replica", replica: 0)]))?.hasSuffix(
            "is not Kind/name with a DNS label as the name") == true)
    }
}

/// RFC 3339 times as Stet reads them, against Foundation's own formatter.
@Suite struct RFC3339Tests {
    @Test(arguments: [
        "2026-11-29T10:00:00Z", "2026-11-29T10:00:00.129Z", "1970-01-01T00:00:00Z", "2000-02-29T23:59:59.999999999Z",
        "2026-11-29T10:00:00+02:00", "2026-11-29T10:00:00-05:30", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
        "1969-12-31T23:59:59.5Z", "2026-03-01t00:00:00z",
    ])
    func parsesWhatFoundationParses(text: String) throws {
        let parsed = try #require(RFC3339.parse(text))
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = text.contains(".") ? [.withInternetDateTime, .withFractionalSeconds] : [.withInternetDateTime]
        // Foundation keeps milliseconds, and counts days before 1583 by the Julian calendar;
        // RFC 3339 (and gmtime) use the proleptic Gregorian one.
        if !text.hasPrefix("0001"), let expected = formatter.date(from: text.uppercased()) {
            #expect(abs(parsed.timeIntervalSince(expected)) < 0.002)
        }
        #expect(RFC3339.parse(RFC3339.format(parsed, milliseconds: true)).map { abs($0.timeIntervalSince(parsed)) < 0.001 } == true)
    }

    @Test(arguments: [
        "", "2026-11-29", "2026-11-29T10:00:00", "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z", "2026-11-31T00:00:00Z",
        "2026-11-29T24:00:00Z", "2026-11-29T10:60:00Z", "2026-11-29T10:00:60Z", "2026-11-29T10:00:00.Z", "2026-11-29T10:00:00Zx",
        "2026-11-29 10:00:00Z", "+2026-11-29T10:00:00Z", "2026-11-29T10:00:00+2:00", "0000-01-01T00:00:00Z",
    ])
    func refusesEverythingElse(text: String) {
        #expect(RFC3339.parse(text) == nil)
    }
}

/// One URL form for probes and notifiers, decided by `validate` exactly as at run time.
@Suite struct HTTPURLTests {
    @Test(arguments: [
        ("http://127.0.0.1:9093/api/v2/alerts", "127.0.0.1", 9093, "/api/v2/alerts"),
        ("http://example.org", "example.org", 80, "/"),
        ("http://[::1]:8080/health?full=1", "::1", 8080, "/health?full=1"),
        ("http://host?x=1", "host", 80, "/?x=1"),
        ("http://Web-1.Example.ORG:65535/", "Web-1.Example.ORG", 65535, "/"),
        ("http://[FE80::1]:1/", "FE80::1", 1, "/"),
    ])
    func accepted(text: String, host: String, port: Int, target: String) throws {
        let url = try HTTPURL.parse(text).get()
        #expect(url.host == host && url.port == port && url.target == target)
    }

    @Test(arguments: [
        ("https://hooks.example.org/x", "uses https"),
        ("http://user:pw@host/", "names a user or password"),
        ("http://host:0/", "expected a port from 1 to 65535"),
        ("http://host:99999/", "expected a port from 1 to 65535"),
        ("http://[::1/", "without its ']'"),
        ("http://[zz]/", "IPv6 address that is not one"),
        ("http://host/a b", "spaces"),
        ("http://host/#frag", "fragment"),
        ("http:///path", "expected a host name"),
        ("ftp://host/", "starting with http://"),
        ("http://-host/", "expected a host name"),
        ("HTTPS://hooks.example.org/x", "uses https"),
        ("hTtPs://hooks.example.org/x", "uses https"),
        ("http://h_st/", "expected a host name"),
        ("http://hé.example/", "not ASCII"),
        ("http://host:8o/", "expected a port from 1 to 65535"),
        ("http://host:+80/", "expected a port from 1 to 65535"),
        ("http://[::g]/", "IPv6 address that is not one"),
    ])
    func refused(text: String, reason: String) {
        guard case .failure(let problem) = HTTPURL.parse(text) else {
            Issue.record("\(text) was accepted")
            return
        }
        #expect(problem.reason.contains(reason), "\(problem.reason)")
    }

    @Test func validateRefusesWhatRunTimeCannotUse() throws {
        let repo = RepositoryFixture()
        for url in ["https://hooks.example.org/x", "http://user:pw@127.0.0.1:9/"] {
            try repo.root.write("manifests/n.yaml", "apiVersion: stet/v1\nkind: Notifier\nmetadata: {name: n}\nspec:\n  webhook: {url: \"\(url)\"}\n")
            #expect(throws: ManifestError.self) { try ManifestLoader.load(directory: repo.manifests) }
        }
    }
}

/// The checks every listed name and path of a release passes, byte by byte.
@Suite struct ReleasePathTests {
    @Test(arguments: ["a.yaml", "a/b.yaml", "...", "a/.../b", ".hidden/x", "a..b/c", "a/..b", "..a"])
    func safePaths(path: String) {
        #expect(ManifestDirectory.isSafeRelativePath(path))
    }

    @Test(arguments: ["", "/a", "a/", "a//b", ".", "..", "./a", "a/.", "a/./b", "../a", "a/..", "a/../b", "a\\b", "a\0b", "/"])
    func unsafePaths(path: String) {
        #expect(!ManifestDirectory.isSafeRelativePath(path))
    }

    @Test func namesInNormalFormWithoutControlsAreAccepted() {
        #expect(ManifestDirectory.nameProblem("web/svc-1.yaml") == nil)
        #expect(ManifestDirectory.nameProblem("caf\u{E9}.yaml") == nil)
        #expect(ManifestDirectory.nameProblem("cafe\u{301}.yaml")?.contains("normal form C") == true)
        #expect(ManifestDirectory.nameProblem("a\u{7F}.yaml")?.contains("control") == true)
        #expect(ManifestDirectory.nameProblem("a\tb.yaml")?.contains("control") == true)
        #expect(ManifestDirectory.nameProblem("a\u{202E}.yaml")?.contains("control") == true)
    }

    @Test func clashesNeedANameThatIsNotASCII() {
        #expect(ManifestDirectory.normalisationClash(["a.yaml", "b.yaml", "a.yaml"]) == nil)
        let clash = ManifestDirectory.normalisationClash(["K.yaml", "x.yaml", "\u{212A}.yaml"])
        #expect(clash?.0 == "K.yaml" && clash?.1 == "\u{212A}.yaml")
    }

    @Test func digestsAreSHA256AndSixtyFourLowercaseHexDigits() {
        let hex = String(repeating: "0a", count: 32)
        #expect(ReleaseIndex.isDigest("sha256:" + hex))
        #expect(!ReleaseIndex.isDigest("sha256:" + hex.uppercased()))
        #expect(!ReleaseIndex.isDigest("sha256:" + hex.dropLast() + "A"))
        #expect(!ReleaseIndex.isDigest("sha256:" + hex.dropLast()))
        #expect(!ReleaseIndex.isDigest("sha256:" + hex + "0"))
        #expect(!ReleaseIndex.isDigest("sha512:" + hex))
        #expect(!ReleaseIndex.isDigest("sha256:" + hex.dropLast() + "g"))
        #expect(!ReleaseIndex.isDigest("SHA256:" + hex))
    }

    /// An index that lists a digest in uppercase is refused as malformed, naming the file and
    /// the form expected, not read file by file and every file refused as changed.
    @Test func anUppercaseDigestIsRefusedWhereTheIndexIsRead() throws {
        func payload(_ digits: String) -> Data {
            Data(
                #"{"type":"stet.release/v1","version":1,"created":"2026-11-01T00:00:00Z","expires":"2027-11-01T00:00:00Z","files":{"web.yaml":"sha256:\#(digits)"}}"#
                    .utf8)
        }
        #expect(try ReleaseIndex.decode(payload(String(repeating: "ab", count: 32))).files.count == 1)
        do throws(VerificationError) {
            _ = try ReleaseIndex.decode(payload(String(repeating: "AB", count: 32)))
            Issue.record("an uppercase digest was accepted")
        } catch {
            #expect(error.code == .indexMalformed)
            #expect(error.description.contains("web.yaml"))
            #expect(error.description.contains("64 lowercase hex digits"))
        }
    }
}

@Suite struct ExcludePatternTests {
    @Test(arguments: ["/data/cache", "!/data/cache/keep", "*.tmp", "/data/[a-z]*", "a\\*b"])
    func validPatterns(pattern: String) {
        #expect(ResticExclude.problem(in: pattern) == nil)
    }

    @Test(arguments: ["[a]x[", "/data/[", "a\\", "x\0y"])
    func invalidPatterns(pattern: String) {
        #expect(ResticExclude.problem(in: pattern) != nil)
    }

    /// Paths and patterns are cleaned on bytes, as Go's `filepath.Clean` cleans them: a `/`
    /// followed by a combining mark (one character to Swift) still separates components.
    @Test func cleaningSplitsAtEverySlashByte() {
        #expect(ResticExclude.clean("a/\u{0301}/..") == "a")
        #expect(ResticExclude.clean("/\u{0301}x/../y") == "/y")
        #expect(ResticExclude.clean("\u{0301}/./b//") == "\u{0301}/b")
        #expect(ResticExclude.clean("/..") == "/")
        #expect(ResticExclude.clean("../a/..") == "..")
        #expect(ResticExclude.clean("") == ".")
        #expect(ResticExclude.problem(in: "[/\u{0301}/..") != nil)
    }

    /// A pattern of one component is checked without splitting it; the answer is the one the
    /// same component gets inside a longer pattern.
    @Test(arguments: ["*.tmp", "[a-z]*", "a\\*b", "**", "[", "a\\", "[a]x[", "[^", "[a-]", "\\", "?", "[]a]", "[\\]"])
    func aSingleComponentIsJudgedAsInALongerPattern(component: String) {
        let alone = ResticExclude.problem(in: component)
        #expect(ResticExclude.problem(in: "!" + component) == alone)
        #expect(ResticExclude.problem(in: "srv/" + component) == alone)
        #expect(ResticExclude.problem(in: "/srv/" + component + "/x") == alone)
    }
}
