import Foundation
import StetCore
import StetCrypto
import StetEngine
import StetProviders
import StetTesting
import Testing

/// Numbers and names from outside (manifests, options, state files, saved plans) on the built
/// binary: each is refused with a message that names it, and nothing traps.
@Suite(.serialized) struct BoundsCLITests {
    var repo = RepositoryFixture()
    let ci = ["STET_KEY": "private/ci.key"]

    init() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        #expect(try stet("trust", "pin", environment: ci).status == 0)
    }

    func stet(_ arguments: String..., environment: [String: String] = [:]) throws -> ProcessOutput {
        try Binary.run(arguments, in: repo.root.path, environment: environment)
    }

    static func service(_ name: String, replicas: Int = 1, tail: String = "") -> String {
        """
        apiVersion: stet/v1
        kind: Service
        metadata: {name: \(name)}
        spec:
          replicas: \(replicas)
          run:
            command: [sleep, "300"]
        \(tail)
        """
    }

    // MARK: - Durations, ports, options

    @Test func aThirtyDayHealthTimeoutIsRefusedWithTheBound() throws {
        try repo.root.write("manifests/web.yaml", Self.service("web", tail: """
              health:
                tcp: {port: 1}
                interval: 30d
                timeout: 30d

            """))
        let validate = try stet("validate")
        #expect(validate.status == 1, "\(validate.combined)")
        #expect(validate.stderr.contains("manifests/web.yaml:11:14: spec.health.timeout: expected a duration of at most 1d, found \"30d\""),
                "\(validate.combined)")
    }

    @Test func aThirtyDayTimeoutReachesPollWithoutTrapping() throws {
        #expect(CheckRunner.remaining(Date().addingTimeInterval(30 * 86_400)) == Int32.max)
        #expect(CheckRunner.remaining(Date(timeIntervalSinceReferenceDate: .nan)) == 0)
        #expect(CheckRunner.remaining(Date.distantPast) == 0)
        // A real check with that timeout, through poll(2): answers instead of trapping.
        let port = 18_411
        let server = try BackgroundProcess("/bin/sh", ["-c", "exec python3 -m http.server --bind 127.0.0.1 \(port)"], in: repo.root.path)
        defer { server.stop(SIGKILL) }
        let check = Check.http(url: "http://127.0.0.1:\(port)/", path: nil, port: nil, expectStatus: nil, bodyContains: nil)
        #expect(eventually { CheckRunner().run(check, port: nil, timeout: 1).ok }, "\(server.output)")
        let result = CheckRunner().run(check, port: nil, timeout: 30 * 86_400)
        #expect(result.ok, "\(result.detail)")
    }

    @Test(arguments: ["99999999999999999999d", "100000000000d", "366d", "53w"])
    func durationsLongerThanAYearAreRefusedCleanly(every: String) throws {
        try repo.root.write("manifests/b.yaml", Samples.backupPolicy(
            name: "b", repository: "backups/b", passwordFile: "secrets/pw", paths: ["data"], every: every, rpo: every))
        let validate = try stet("validate")
        #expect(validate.status == 1, "\(validate.combined)")
        #expect(validate.stderr.contains("manifests/b.yaml:8:10: spec.every: expected a duration of at most 365d, found \"\(every)\""),
                "\(validate.combined)")
        #expect(validate.stderr.contains("manifests/b.yaml:9:8: spec.rpo: expected a duration of at most 365d"), "\(validate.combined)")
    }

    @Test func aPortBeyond65535ForAnyReplicaIsRefused() throws {
        try repo.root.write("manifests/web.yaml", Self.service("web", replicas: 2).replacingOccurrences(
            of: "    command: [sleep, \"300\"]\n", with: "    command: [sleep, \"300\"]\n    ports: {start: 65535}\n"))
        let validate = try stet("validate")
        #expect(validate.status == 1, "\(validate.combined)")
        #expect(validate.stderr.contains(
            "manifests/web.yaml:8:20: spec.run.ports.start: expected a start of at most 65534 for 2 replicas: replica 1 would get PORT=65536, beyond 65535"),
                "\(validate.combined)")
        // One replica on the last port is fine.
        try repo.root.write("manifests/web.yaml", Self.service("web", replicas: 1).replacingOccurrences(
            of: "    command: [sleep, \"300\"]\n", with: "    command: [sleep, \"300\"]\n    ports: {start: 65535}\n"))
        #expect(try stet("validate").status == 0)
    }

    @Test(arguments: [
        (["status", "--lock-timeout", "nan"], "--lock-timeout nan: expected seconds from 0 to at most 86400"),
        (["plan", "--lock-timeout", "1e300"], "--lock-timeout 1e+300: expected seconds from 0 to at most 86400"),
        (["run", "--interval", "0"], "--interval 0.0: expected seconds above 0 to at most 86400"),
        (["run", "--interval", "inf"], "--interval inf: expected seconds above 0 to at most 86400"),
        (["drill", "monitor", "m", "--timeout=-1"], "--timeout -1.0: expected seconds from 0 to at most 86400"),
        (["run", "--source", "git:x", "--poll", "400d"], "--poll 400d: expected a duration such as 30s"),
    ])
    func secondsFromOptionsAreBounded(arguments: [String], message: String) throws {
        let run = try Binary.run(arguments, in: repo.root.path, environment: ci)
        #expect(run.status == 64, "\(run.combined)")
        #expect(run.stderr.contains(message), "\(run.combined)")
    }
}
