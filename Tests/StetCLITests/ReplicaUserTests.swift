import Foundation
import StetCore
import StetProviders
import StetTesting
import Testing

/// Replicas cannot reach Stet's state: as root, Stet starts them as an unprivileged user
/// (`spec.run.user`, by default `stet-replica`), holding their log only as a descriptor.
@Suite(.serialized) struct ReplicaUserTests {
    var repo = RepositoryFixture()
    let ci = ["STET_KEY": "private/ci.key"]

    init() throws {
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ci"]))
        #expect(try stet("trust", "pin", environment: ci).status == 0)
    }

    func stet(_ arguments: String..., environment: [String: String] = [:]) throws -> ProcessOutput {
        try Binary.run(arguments, in: repo.root.path, environment: environment)
    }

    /// A service whose one replica runs `script` with `STATE` set to the state directory.
    func release(_ name: String, port: Int, script: String, user: String? = nil, sign: Bool = true) throws {
        try repo.root.write("manifests/svc.yaml", """
            apiVersion: stet/v1
            kind: Service
            metadata: {name: \(name)}
            spec:
              replicas: 1
              run:
                command: [sh, -c, '\(script)']
                env: {STATE: "\(repo.stateDir)"}
                ports: {start: \(port)}
                stopTimeout: 2s
            \(user.map { "    user: \($0)\n" } ?? "")
            """)
        if sign { try repo.sign(["alice"]) }
    }

    func record(_ service: String) -> (pid: Int32, startTime: UInt64)? {
        struct Record: Decodable {
            let pid: Int32
            let startTime: UInt64
        }
        guard let data = repo.root.read(".stet/replicas/\(service)/0.json"),
            let record = try? JSONDecoder().decode(Record.self, from: data), record.pid > 0
        else { return nil }
        return (record.pid, record.startTime)
    }

    /// The four uids (real, effective, saved, filesystem) of `pid` from `/proc/PID/status`.
    static func uids(_ pid: Int32) -> [UInt32] {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") })
        else { return [] }
        return line.dropFirst(4).split(whereSeparator: { $0 == "\t" || $0 == " " }).compactMap { UInt32($0) }
    }

    func stopAll(_ service: String) {
        _ = try? stet("down", environment: ci)
        if let (pid, startTime) = record(service), ProcessTable.isAlive(pid, startTime: startTime) {
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
        }
    }

    /// What a replica that wants to disable Stet tries: append garbage to the audit log through
    /// its log's descriptor (`/proc/self/fd/2` reopens the file), by the state directory's
    /// path, and by the folder its log is in. As root, none of it works, and the replica's uid
    /// is `stet-replica`'s.
    @Test(.enabled(if: geteuid() == 0, "replicas change user only when Stet runs as root"))
    func aReplicaRunsUnprivilegedAndCannotWriteTheState() throws {
        defer { stopAll("jail") }
        let script = [
            #"if echo garbage >> /proc/self/fd/2; then echo reopen-written; else echo reopen-refused; fi"#,
            #"if echo garbage >> "$STATE/audit/log.jsonl"; then echo log-written; else echo log-refused; fi"#,
            #"d=$(dirname "$(readlink /proc/self/fd/2)")"#,
            #"if echo garbage >> "$d/../audit/log.jsonl"; then echo dir-written; else echo dir-refused; fi"#,
            #"if ls "$d" > /dev/null; then echo logs-listed; else echo logs-refused; fi"#,
            "echo checked", "exec sleep 300",
        ].joined(separator: "; ")
        try release("jail", port: 18610, script: script)
        let apply = try stet("apply", "--auto-approve", environment: ci)
        #expect(apply.status == 0, "\(apply.combined)")
        #expect(apply.stdout.contains("as user stet-replica"), "\(apply.stdout)")
        let logPath = repo.stateDir + "/logs/jail-0.log"
        #expect(eventually(timeout: 20) { ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").contains("checked") })
        let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        for refused in ["reopen-refused", "log-refused", "dir-refused", "logs-refused"] {
            #expect(log.contains(refused), "\(log)")
        }
        #expect(!log.contains("-written"), "\(log)")
        // The replica runs as stet-replica, every uid of it.
        let (pid, _) = try #require(record("jail"))
        let user = try #require(try ReplicaUser.resolve(nil))
        #expect(user.name == "stet-replica" && user.uid != 0)
        #expect(Self.uids(pid) == [UInt32](repeating: user.uid, count: 4), "\(Self.uids(pid))")
        // Its log stays Stet's: 0600, owned by root, and the audit log verifies.
        var info = stat()
        #expect(lstat(logPath, &info) == 0 && info.st_uid == 0 && info.st_mode & 0o777 == 0o600)
        let verify = try stet("audit", "verify")
        #expect(verify.status == 0, "\(verify.combined)")
        #expect(try stet("down", environment: ci).status == 0)
    }

    /// `spec.run.user` names the user; it changes the spec (so the replica is replaced), and a
    /// missing user fails the start with what to do.
    @Test(.enabled(if: geteuid() == 0, "replicas change user only when Stet runs as root"))
    func aNamedUserIsTheOneReplicasRunAs() throws {
        defer { stopAll("named") }
        try release("named", port: 18620, script: "exec sleep 300", user: "nobody")
        let apply = try stet("apply", "--auto-approve", environment: ci)
        #expect(apply.status == 0, "\(apply.combined)")
        let (pid, _) = try #require(record("named"))
        #expect(Self.uids(pid) == [65534, 65534, 65534, 65534])
        try release("named", port: 18620, script: "exec sleep 300", user: "stet-no-such-user")
        let missing = try stet("apply", "--auto-approve", environment: ci)
        #expect(missing.status == 1)
        #expect(missing.combined.contains("there is no user \"stet-no-such-user\" on this host"), "\(missing.combined)")
    }

    /// A user name out of form, or root, is refused by validation at its line and column.
    @Test(arguments: [
        ("root", "expected an unprivileged user"), ("Web", "expected a user name"), ("-x", "expected a user name"),
        ("a b", "expected a user name"), (String(repeating: "a", count: 33), "expected a user name"),
    ])
    func usersOutOfFormAndRootAreRefused(_ user: String, _ message: String) throws {
        try release("form", port: 18630, script: "exec sleep 300", user: "\"\(user)\"", sign: false)
        let validate = try stet("validate")
        #expect(validate.status == 1)
        #expect(validate.stderr.contains("manifests/svc.yaml:11:11: spec.run.user: \(message)"), "\(validate.stderr)")
    }

    /// Not root: replicas run as Stet's own user, as before; naming another user is an error
    /// that says why, naming Stet's own user is fine.
    @Test func withoutRootReplicasKeepStetsUser() throws {
        #expect(try ReplicaUser.resolve(nil, effectiveUID: 65534) == nil)
        #expect(try ReplicaUser.resolve("nobody", effectiveUID: 65534) == nil)
        #expect {
            try ReplicaUser.resolve("nobody", effectiveUID: 4321)
        } throws: { error in
            "\(error)".contains("Stet runs as uid 4321, not root, and cannot start processes as another user")
        }
    }

    /// A spec without `user` keeps the hash it had before the field existed (replicas are not
    /// restarted by an upgrade); setting it changes the spec.
    @Test func theSpecHashChangesOnlyWhenAUserIsNamed() {
        let plain = Service.Run(command: ["serve"], env: ["A": "1"], portsStart: 9000)
        #expect(plain.specText == #"{"command":["serve"],"env":{"A":"1"},"portsStart":9000,"stopSignal":"SIGTERM","stopTimeout":"10s"}"#)
        var named = plain
        named.user = "web"
        #expect(named.specText.contains(#""user":"web""#))
    }
}
