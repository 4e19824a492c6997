import Foundation
import StetCore
import StetManifest
import StetTesting
import Testing

@Suite struct ManifestDecodingTests {
    static func decode(_ text: String, name: String = "m.yaml") throws -> DesiredState {
        try ManifestLoader.decode(files: [(name, Data(text.utf8))])
    }

    static func messages(_ text: String) -> [String] {
        do {
            _ = try decode(text)
            return []
        } catch let error as ManifestError {
            return error.diagnostics.map(\.description)
        } catch {
            return ["unexpected \(error)"]
        }
    }

    static let service = """
        apiVersion: stet/v1
        kind: Service
        metadata: {name: web}
        spec:
          replicas: 2
          run:
            command: [python3, -m, http.server]

        """

    /// Two keys of one mapping that Swift's strings call equal (canonically equivalent: `K` and
    /// the Kelvin sign, a precomposed and a decomposed `é`) are one field given twice, in a
    /// mapping of any size: a map of variables would keep one of them silently, and a reviewer's
    /// tool could show both.
    @Test(arguments: [("API_KEY", "API_\\u212AEY"), ("caf\\u00e9", "cafe\\u0301")])
    func canonicallyEquivalentKeysAreOneFieldGivenTwice(first: String, second: String) {
        for padding in [0, 20] {
            let others = (0..<padding).map { "\"V\($0)\": x, " }.joined()
            let text = Self.service.replacingOccurrences(
                of: "command: [python3, -m, http.server]",
                with: "command: [python3, -m, http.server]\n    env: {\(others)\"\(first)\": a, \"\(second)\": b}")
            let found = Self.messages(text)
            #expect(found.count == 1 && found.first?.contains("duplicate field (first at line 8)") == true, "\(padding): \(found)")
        }
    }

    /// A whole number is read from its bytes as `Int(_:)` reads its text: signs and leading
    /// zeros are accepted, and a number that does not fit is refused, never wrapped into range.
    @Test(arguments: [
        "2", "+2", "002", "-0", "+0", "1000", "1001", "-1", "9223372036854775807", "9223372036854775808",
        "-9223372036854775808", "-9223372036854775809", "18446744073709551618", "-18446744073709551614",
        "99999999999999999999999999999999999999",
    ])
    func wholeNumbersAreReadAsIntReadsThem(text: String) {
        let yaml = Self.service.replacingOccurrences(of: "replicas: 2", with: "replicas: \(text)")
        let expected = Int(text).flatMap { (0...Service.maximumReplicas).contains($0) ? $0 : nil }
        if let expected {
            #expect((try? Self.decode(yaml))?.services["web"]?.replicas == expected, "\(text)")
        } else {
            let found = Self.messages(yaml)
            #expect(found == ["m.yaml:5:13: spec.replicas: expected a whole number from 0 to 1000, found \"\(text)\""], "\(text)")
        }
    }

    /// A mapping too large to search in place (more than 16 pairs) is read as a small one is:
    /// the same keys refused for the same reasons, at the same places.
    @Test func aLargeMappingIsReadAsASmallOneIs() {
        func problems(padding: Int) -> [String] {
            let others = (0..<padding).map { "  u\($0): 1\n" }.joined()
            let yaml = """
                apiVersion: stet/v1
                kind: Service
                metadata: {name: web}
                spec:
                  replicas: 2
                  ~: 1
                  [a]: 1
                  "bad\\0key": 1
                  replicas: 3
                  run:
                    command: [python3]
                \(others)
                """
            return Self.messages(yaml).filter { !$0.contains(": spec.u") }
        }
        let small = problems(padding: 0)
        #expect(small == [
            "m.yaml:6:3: spec: expected field names to be strings, found nothing",
            "m.yaml:7:3: spec: expected field names to be strings, found a list",
            "m.yaml:8:3: spec.bad\u{0}key: expected a field name without a NUL character",
            "m.yaml:9:3: spec.replicas: duplicate field (first at line 5)",
        ])
        #expect(problems(padding: 20) == small)
        let unknown = Self.messages(Self.service + "  u0: 1\n").filter { $0.contains("unknown field") }
        #expect(unknown == ["m.yaml:8:3: spec.u0: unknown field (expected one of: drift, drill, failover, health, placement, protect, replicas, restart, run, update)"], "\(unknown)")
    }

    /// The names a mapping's reader asked for are its own, whatever the other mappings and
    /// documents of the file asked: each unknown field is told the fields of its own mapping.
    @Test func anUnknownFieldIsToldTheFieldsOfItsOwnMapping() {
        let text = [
            Self.service.replacingOccurrences(of: "metadata: {name: web}", with: "metadata: {name: web, colour: red}"),
            Self.service.replacingOccurrences(of: "name: web", with: "name: api") + "  shade: blue\n",
        ].joined(separator: "---\n")
        #expect(Self.messages(text) == [
            "m.yaml:3:23: metadata.colour: unknown field (expected one of: labels, name)",
            "m.yaml:16:3: spec.shade: unknown field (expected one of: drift, drill, failover, health, placement, protect, replicas, restart, run, update)",
        ])
    }

    @Test func everyFieldOfEveryKindDecodes() throws {
        let text = [
            Samples.service(name: "web", replicas: 2, port: 8080), Samples.backup(name: "web-data"),
            Samples.monitor(name: "web-up", port: 8080), Samples.notifier(name: "ops-log"),
            """
            apiVersion: stet/v1
            kind: Monitor
            metadata: {name: backup-fresh}
            spec:
              probe: {backup: web-data}
              notify: [pager]
            ---
            apiVersion: stet/v1
            kind: Notifier
            metadata: {name: pager}
            spec:
              alertmanager: {url: "http://127.0.0.1:9093"}

            """,
        ].joined(separator: "---\n")
        let state = try Self.decode(text)
        let web = try #require(state.services["web"])
        #expect(web.replicas == 2)
        #expect(web.run.command == ["python3", "-m", "http.server"])
        #expect(web.run.env == ["LOG_LEVEL": "info"])
        #expect(web.run.portsStart == 8080)
        #expect(web.run.workingDir == "/srv/web")
        #expect(web.run.stopTimeout == .seconds(10))
        #expect(web.health?.check == .http(url: nil, path: "/", port: nil, expectStatus: nil, bodyContains: nil))
        #expect(web.health?.startPeriod == .seconds(10))
        #expect(web.backoffInitial == StetDuration(milliseconds: 500))
        #expect(web.backoffMax == .seconds(60))
        #expect(web.metadata.labels == ["team": "shop", "tier": "web"])
        let backup = try #require(state.backupPolicies["web-data"])
        #expect(backup.rpo == .seconds(7200))
        #expect(backup.retention == .init(last: 5, hourly: 24, daily: 7, weekly: 4, monthly: 6))
        #expect(backup.checkEvery == .seconds(86_400))
        #expect(backup.restoreTestEvery == .seconds(7 * 86_400))
        #expect(backup.protect)
        let monitor = try #require(state.monitors["web-up"])
        #expect(monitor.pendingFor == .seconds(30))
        #expect(monitor.severity == .critical)
        #expect(monitor.notify == ["ops-log"])
        #expect(state.monitors["backup-fresh"]?.probe == .backup("web-data"))
        #expect(state.notifiers["pager"]?.target == .alertmanager(url: "http://127.0.0.1:9093"))
        #expect(state.notifiers["ops-log"]?.target == .log)
        #expect(state.resourceIDs.count == 6)
    }

    @Test func failoverDecodesWithItsDefaults() throws {
        let full = try #require(Self.decode(Self.plus("""
              failover:
                mode: primary
                promote: [db-ctl, promote]
                demote: [db-ctl, demote]
                fence: stop
                prefer: {zone: a}
                timeout: 30s

            """)).services["web"]?.failover)
        #expect(full == Service.Failover(promote: ["db-ctl", "promote"], demote: ["db-ctl", "demote"], fence: .stop, prefer: ["zone": "a"],
                                         timeout: .seconds(30)))
        let least = try #require(Self.decode(Self.plus("  failover: {mode: primary, fence: stop}\n")).services["web"]?.failover)
        #expect(least == Service.Failover(fence: .stop))
        #expect(try Self.decode(Self.service).services["web"]?.failover == nil)
    }

    struct Case: CustomTestStringConvertible, Sendable {
        let text: String
        let expected: [String]
        init(_ text: String, _ expected: [String]) {
            self.text = text
            self.expected = expected
        }
        var testDescription: String { expected.first ?? "" }
    }

    static func with(_ replacing: String, _ replacement: String) -> String {
        service.replacingOccurrences(of: replacing, with: replacement)
    }

    static func plus(_ tail: String) -> String { service + tail }

    /// A MaintenanceWindow whose spec starts with `first` (the schedule), then `duration`.
    static func window(_ first: String, duration: String = "2h") -> String {
        "apiVersion: stet/v1\nkind: MaintenanceWindow\nmetadata: {name: nightly}\nspec:\n  \(first)\n  duration: \(duration)\n"
    }

    static let cases: [Case] = [
        Case(with("replicas: 2", "replicas: two"),
         ["m.yaml:5:13: spec.replicas: expected a whole number from 0 to 1000, found \"two\""]),
        Case(with("replicas: 2", "replicas: -1"),
         ["m.yaml:5:13: spec.replicas: expected a whole number from 0 to 1000, found \"-1\""]),
        Case(with("  replicas: 2\n", ""),
         ["m.yaml:5:3: spec.replicas: missing required field (how many copies run)"]),
        Case(with("{name: web}", "{name: Web_1}"),
         ["m.yaml:3:18: metadata.name: expected a DNS label (lowercase letters, digits and '-', 1 to 63 characters, starting and ending with a letter or digit), found \"Web_1\""]),
        Case(plus("  colour: blue\n"),
         ["m.yaml:8:3: spec.colour: unknown field (expected one of: drift, drill, failover, health, placement, protect, replicas, restart, run, update)"]),
        Case(plus("  failover: {promote: [x]}\n"),
         ["m.yaml:8:13: spec.failover.mode: missing required field (primary: one replica is the primary, the others standbys)"]),
        Case(plus("  failover: {mode: primary}\n"),
         ["m.yaml:8:13: spec.failover: expected a demote command, or fence: stop (a primary that cannot be demoted must be stopped to be fenced)"]),
        Case(plus("  failover: {mode: leader}\n"),
         ["m.yaml:8:20: spec.failover.mode: expected mode primary, found \"leader\""]),
        Case(plus("  failover: {mode: primary, fence: kill}\n"),
         ["m.yaml:8:36: spec.failover.fence: expected one of demote, stop, found \"kill\""]),
        Case(plus("  failover: {mode: primary, fence: stop, timeout: 1h}\n"),
         ["m.yaml:8:51: spec.failover.timeout: expected a duration of at most 5m, found \"1h\""]),
        Case(plus("  failover: {mode: primary, fence: stop, promote: []}\n"),
         ["m.yaml:8:51: spec.failover.promote: expected at least one item"]),
        Case(plus("  drill: {every: 1d, window: nightly}\n"),
         ["m.yaml:8:30: spec.drill.window: Service/web refers to MaintenanceWindow/nightly, which no manifest declares"]),
        Case(plus("  drill: {every: 1d, recoverWithin: 10m}\n"),
         ["m.yaml:8:37: spec.drill.recoverWithin: expected a duration of at most 5m, found \"10m\""]),
        Case(with("replicas: 2", "replicas: 1") + "  drill: {every: 1d}\n",
         ["m.yaml:8:10: spec.drill: expected at least 2 replicas for a drill: it kills one, and a single replica has no redundancy to test"]),
        Case(plus("  drift: warn\n  drill: {every: 1d}\n"),
         ["m.yaml:9:10: spec.drill: expected drift: correct for a drill: with drift: warn nothing replaces the replica it kills"]),
        Case(plus("  drill: {recoverWithin: 10s}\n"),
         ["m.yaml:8:10: spec.drill.every: missing required field (how often the drill runs, such as 7d)"]),
        Case(window("schedule: \"61 2 * * *\""),
         ["m.yaml:5:13: spec.schedule: minute: expected *, a number from 0 to 59, or a range; found \"61\""]),
        Case(window("schedule: \"0 0 30 2 *\""),
         ["m.yaml:5:13: spec.schedule: expected a schedule that happens: \"0 0 30 2 *\" matches no day"]),
        Case(window("schedule: \"@daily\"\n  timeZone: ../../etc/passwd"),
         ["m.yaml:6:13: spec.timeZone: expected an IANA time zone name such as Europe/Berlin, found \"../../etc/passwd\""]),
        Case(window("schedule: \"@daily\"\n  timeZone: Mars/Olympus"),
         ["m.yaml:6:13: spec.timeZone: no time zone Mars/Olympus in the system's zoneinfo (/usr/share/zoneinfo); is tzdata installed?"]),
        Case(window("schedule: \"@daily\"\n  disruption: [restart, everything]"),
         ["m.yaml:6:25: spec.disruption[1]: expected one of none, restart, data, found \"everything\""]),
        Case(window("schedule: \"@daily\"", duration: "30d"),
         ["m.yaml:6:13: spec.duration: expected a duration from 1s to 7d, found 30d"]),
        Case(with("[python3, -m, http.server]", "python3"),
         ["m.yaml:7:14: spec.run.command: expected a list, found \"python3\""]),
        Case(with("[python3, -m, http.server]", "[]"),
         ["m.yaml:7:14: spec.run.command: expected at least one item"]),
        Case(plus("    env: {DEBUG: 1}\n"),
         ["m.yaml:8:18: spec.run.env.DEBUG: expected a string (quote it: \"1\"), found \"1\""]),
        Case(with("[python3, -m, http.server]", "[python3, \"-m\\0x\", http.server]"),
         ["m.yaml:7:24: spec.run.command[1]: expected text without a NUL character"]),
        Case(plus("    env: {DEBUG: \"on\\0rm -rf\"}\n"),
         ["m.yaml:8:18: spec.run.env.DEBUG: expected text without a NUL character"]),
        Case(plus("    env: {PORT: \"1\"}\n"),
         ["m.yaml:8:11: spec.run.env.PORT: PORT is set by Stet from run.ports.start"]),
        Case(plus("    stopTimeout: 10 seconds\n"),
         ["m.yaml:8:18: spec.run.stopTimeout: expected a duration such as 500ms, 30s, 1h30m or 7d, found \"10 seconds\""]),
        Case(plus("    stopSignal: SIGFOO\n"),
         ["m.yaml:8:17: spec.run.stopSignal: expected one of SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGKILL, found \"SIGFOO\""]),
        Case(plus("    ports: {start: 70000}\n"),
         ["m.yaml:8:20: spec.run.ports.start: expected a whole number from 1 to 65535, found \"70000\""]),
        Case(plus("  health: {http: {path: /}, tcp: {}}\n"),
         ["m.yaml:8:34: spec.health.tcp: only one of http, tcp, exec may be set; found http and tcp"]),
        Case(plus("  health: {interval: 5s}\n"),
         ["m.yaml:8:11: spec.health: expected exactly one of http, tcp, exec"]),
        Case(plus("  health: {tcp: {}, interval: 1s, timeout: 2s}\n"),
         ["m.yaml:8:44: spec.health.timeout: expected a timeout no longer than the interval (1s)"]),
        Case(plus("  health: {tcp: {}, interval: 30d, timeout: 30d}\n"),
         ["m.yaml:8:45: spec.health.timeout: expected a duration of at most 1d, found \"30d\""]),
        Case(plus("    stopTimeout: 2d\n"),
         ["m.yaml:8:18: spec.run.stopTimeout: expected a duration of at most 1d, found \"2d\""]),
        Case(plus("    ports: {start: 65535}\n"),
         ["m.yaml:8:20: spec.run.ports.start: expected a start of at most 65534 for 2 replicas: replica 1 would get PORT=65536, beyond 65535"]),
        Case(plus("  health: {tcp: {port: 0}}\n"),
         ["m.yaml:8:24: spec.health.tcp.port: expected a whole number from 1 to 65535, found \"0\""]),
        Case(with("replicas: 2", "replicas: 1001"),
         ["m.yaml:5:13: spec.replicas: expected a whole number from 0 to 1000, found \"1001\""]),
        Case(plus("  restart: {backoff: {initial: 5s, max: 1s}}\n"),
         ["m.yaml:8:41: spec.restart.backoff.max: expected max (1s) to be at least initial (5s)"]),
        Case(plus("  drift: fix\n"),
         ["m.yaml:8:10: spec.drift: expected one of correct, warn, observe, found \"fix\""]),
        Case(plus("  protect: maybe\n"),
         ["m.yaml:8:12: spec.protect: expected true or false, found \"maybe\""]),
        Case(with("replicas: 2", "replicas: \"2\""),
         ["m.yaml:5:13: spec.replicas: expected a whole number from 0 to 1000, found \"2\""]),
        Case(plus("  protect: yes\n"),
         ["m.yaml:8:12: spec.protect: expected true or false, found \"yes\""]),
        Case(plus("  drift:\n"),
         ["m.yaml:8:9: spec.drift: expected one of correct, warn, observe, found nothing"]),
        Case(plus("  update: {maxUnavailable: 0}\n"),
         ["m.yaml:8:28: spec.update.maxUnavailable: expected a whole number from 1 to 1000, found \"0\""]),
        Case(with("stet/v1", "stet/v2"),
         ["m.yaml:1:13: apiVersion: expected stet/v1, found \"stet/v2\""]),
        Case(with("kind: Service", "kind: Servce"),
         ["m.yaml:2:7: kind: expected one of Service, BackupPolicy, Monitor, Notifier, MaintenanceWindow, found \"Servce\""]),
        Case(with("metadata: {name: web}", "metadata: {name: web, name: api}"),
         ["m.yaml:3:23: metadata.name: duplicate field (first at line 3)"]),
        Case(plus("---\n" + service),
         ["m.yaml:9:1: metadata.name: duplicate Service/web (first declared at m.yaml:1:1)"]),
        Case("kind: [\n", ["m.yaml:2:1: invalid YAML: while parsing a flow node did not find expected node content"]),
        Case("- a\n- b\n", ["m.yaml:1:1: expected a mapping, found a list"]),
        Case("""
         apiVersion: stet/v1
         kind: BackupPolicy
         metadata: {name: b}
         spec:
           paths: []
           repository: {restic: {repo: /r}}
           every: 2h
           rpo: 1h
           retention: {last: 0}

         """, [
             "m.yaml:5:10: spec.paths: expected at least one item",
             "m.yaml:6:24: spec.repository.restic.passwordFile: missing required field (a file holding the repository password)",
             "m.yaml:9:14: spec.retention: expected at least one of last, hourly, daily, weekly, monthly above 0: a retention that keeps nothing would delete every snapshot",
         ]),
        Case("""
         apiVersion: stet/v1
         kind: BackupPolicy
         metadata: {name: b}
         spec:
           paths: [/data]
           repository: {restic: {repo: /r, passwordFile: /p}}
           every: 2h
           rpo: 1h

         """, ["m.yaml:8:8: spec.rpo: expected an rpo at least as long as every (2h): it could never be met"]),
        Case("""
         apiVersion: stet/v1
         kind: Monitor
         metadata: {name: m}
         spec:
           probe: {service: nope}
           notify: [pager]
           labels: {"bad-label": x}

         """, [
             "m.yaml:5:20: spec.probe.service: Monitor/m refers to Service/nope, which no manifest declares",
             "m.yaml:6:12: spec.notify[0]: Monitor/m refers to Notifier/pager, which no manifest declares",
             "m.yaml:7:12: spec.labels.bad-label: expected a label name of letters, digits and '_' not starting with a digit, found \"bad-label\"",
         ]),
        Case("""
         apiVersion: stet/v1
         kind: Monitor
         metadata: {name: m}
         spec:
           probe: {tcp: {address: localhost}}

         """, ["m.yaml:5:26: spec.probe.tcp.address: expected host:port, found \"localhost\""]),
        Case("""
         apiVersion: stet/v1
         kind: Notifier
         metadata: {name: n}
         spec:
           webhook: {url: ftp://x}

         """, ["m.yaml:5:18: spec.webhook.url: \"ftp://x\" expected a URL starting with http://"]),
        Case("""
         apiVersion: stet/v1
         kind: Notifier
         metadata: {name: n}
         spec:
           alertmanager: {url: "http://127.0.0.1:0/"}

         """, ["m.yaml:5:23: spec.alertmanager.url: \"http://127.0.0.1:0/\" expected a port from 1 to 65535, found \"0\""]),
        Case("""
         apiVersion: stet/v1
         kind: BackupPolicy
         metadata: {name: b}
         spec:
           paths: [/data]
           repository: {restic: {repo: /r, passwordFile: /p}}
           every: 99999999999999999999d
           rpo: 366d
           verify: {check: 100000000000d}

         """, [
             "m.yaml:7:10: spec.every: expected a duration of at most 365d, found \"99999999999999999999d\"",
             "m.yaml:8:8: spec.rpo: expected a duration of at most 365d, found \"366d\"",
             "m.yaml:9:19: spec.verify.check: expected a duration of at most 365d, found \"100000000000d\"",
         ]),
        Case("""
         apiVersion: stet/v1
         kind: Monitor
         metadata: {name: m}
         spec:
           probe: {http: {url: "http://127.0.0.1:70000/"}}

         """, ["m.yaml:5:23: spec.probe.http.url: \"http://127.0.0.1:70000/\" expected a port from 1 to 65535, found \"70000\""]),
        // Without its url, the rest of an HTTP probe is still read and checked, not called unknown.
        Case("""
         apiVersion: stet/v1
         kind: Monitor
         metadata: {name: m}
         spec:
           probe: {http: {expectStatus: 99, bodyContains: ok}}

         """, [
             "m.yaml:5:17: spec.probe.http.url: missing required field (http://host:port/path)",
             "m.yaml:5:32: spec.probe.http.expectStatus: expected a whole number from 100 to 599, found \"99\"",
         ]),
        Case("""
         apiVersion: stet/v1
         kind: Monitor
         metadata: {name: m}
         spec:
           probe: {tcp: {address: "127.0.0.1:1"}}
           interval: 1s
           timeout: 2s

         """, ["m.yaml:7:12: spec.timeout: expected a timeout no longer than the interval (1s): probes never overlap"]),
        Case("""
         apiVersion: stet/v1
         kind: Monitor
         metadata: {name: m}
         spec:
           probe: {tcp: {address: "127.0.0.1:1"}}
           interval: 30d
           timeout: 2d

         """, ["m.yaml:7:12: spec.timeout: expected a duration of at most 1d, found \"2d\""]),
        ]

    /// Wrong inputs and the exact messages they must give.
    @Test(arguments: cases)
    func wrongInputGivesExactMessages(_ example: Case) {
        #expect(Self.messages(example.text) == example.expected)
    }

    @Test func allErrorsOfADirectoryAreReportedTogether() throws {
        let dir = TemporaryDirectory()
        try dir.write("m/a.yaml", Self.service.replacingOccurrences(of: "replicas: 2", with: "replicas: x"))
        try dir.write("m/sub/b.yml", Self.service.replacingOccurrences(of: "kind: Service", with: "kind: Nope"))
        try dir.write("m/notes.txt", "ignored")
        #expect {
            try ManifestLoader.load(directory: dir.file("m"))
        } throws: { error in
            let lines = (error as? ManifestError)?.diagnostics.map(\.description) ?? []
            return lines == [
                "\(dir.file("m"))/a.yaml:5:13: spec.replicas: expected a whole number from 0 to 1000, found \"x\"",
                "\(dir.file("m"))/sub/b.yml:2:7: kind: expected one of Service, BackupPolicy, Monitor, Notifier, MaintenanceWindow, found \"Nope\"",
            ]
        }
    }

    @Test func mutatedManifestsNeverCrash() throws {
        let original = Data((Samples.service(name: "web", replicas: 2, port: 8080) + "---\n" + Samples.backup(name: "b")
            + "---\n" + Samples.monitor(name: "m", port: 1, notifier: "n") + "---\n" + Samples.notifier(name: "n")).utf8)
        _ = try ManifestLoader.decode(files: [("m.yaml", original)])
        var mutator = Mutator(seed: 3)
        var rejected = 0
        for _ in 0..<3000 {
            do {
                _ = try ManifestLoader.decode(files: [("m.yaml", mutator.mutate(original))])
            } catch let error as ManifestError {
                #expect(!error.diagnostics.isEmpty)
                rejected += 1
            }
        }
        #expect(rejected > 1000)
    }
}

@Suite struct DurationTests {
    @Test(arguments: [
        ("500ms", 500), ("2s", 2000), ("1h30m", 5_400_000), ("7d", 604_800_000), ("1w", 604_800_000),
        ("1d2h3m4s5ms", 93_784_005), ("0s", 0),
    ] as [(String, Int64)])
    func parses(text: String, milliseconds: Int64) {
        #expect(StetDuration(parsing: text)?.milliseconds == milliseconds)
    }

    @Test(arguments: ["", "5", "s", "1.5s", "-1s", "1m1h", "1s1s", "1 s", "1y", "99999999999999999999s", "10000000000000000d"])
    func rejects(text: String) {
        #expect(StetDuration(parsing: text) == nil)
    }

    @Test(arguments: ["500ms", "2s", "1h30m", "7d", "1d2h3m4s5ms"])
    func printsWhatItParses(text: String) {
        #expect(StetDuration(parsing: text)?.description == text)
    }
}
