public import Foundation
public import StetCrypto
public import StetManifest

/// Builds signed test repositories: keys, a trust policy, manifests and a release.
public struct RepositoryFixture {
    public let root: TemporaryDirectory
    public private(set) var keys: [String: PrivateKey] = [:]

    public init(root: TemporaryDirectory = TemporaryDirectory()) { self.root = root }

    public var manifests: String { root.file("manifests") }
    public var trustFile: String { root.file("keys/trust.yaml") }
    public var stateDir: String { root.file(".stet") }

    /// Makes (or reuses) key `name`: private key at `private/NAME.key` (0600), public at
    /// `keys/NAME.pub`.
    @discardableResult
    public mutating func key(_ name: String) throws -> PrivateKey {
        if let existing = keys[name] { return existing }
        let key = try PrivateKey.generate()
        try root.write("private/\(name).key", try key.pem(), mode: 0o600)
        try root.write("keys/\(name).pub", try key.publicKey.pem())
        keys[name] = key
        return key
    }

    public func privateKeyPath(_ name: String) -> String { root.file("private/\(name).key") }

    /// Writes `keys/trust.yaml`. Roles map to (threshold, key names).
    public mutating func writeTrust(
        version: Int = 1, root rootRole: (Int, [String]), release: (Int, [String]), operator: (Int, [String])? = nil,
        node: (Int, [String])? = nil, example: Set<String> = []
    ) throws {
        var names = Set(rootRole.1 + release.1 + (`operator`?.1 ?? []) + (node?.1 ?? []))
        names.formUnion(example)
        for name in names { try key(name) }
        var text = "apiVersion: stet/v1\nkind: TrustPolicy\nversion: \(version)\nkeys:\n"
        for name in names.sorted() {
            text += "  \(name): {publicKey: \(name).pub\(example.contains(name) ? ", example: true" : "")}\n"
        }
        text += "roles:\n"
        text += "  root: {threshold: \(rootRole.0), keys: [\(rootRole.1.joined(separator: ", "))]}\n"
        text += "  release: {threshold: \(release.0), keys: [\(release.1.joined(separator: ", "))]}\n"
        if let op = `operator` { text += "  operator: {threshold: \(op.0), keys: [\(op.1.joined(separator: ", "))]}\n" }
        if let node { text += "  node: {threshold: \(node.0), keys: [\(node.1.joined(separator: ", "))]}\n" }
        try root.write("keys/trust.yaml", text)
    }

    /// The example service, backup, monitor and notifier, one file each.
    public func writeManifests(replicas: Int = 2) throws {
        try root.write("manifests/web.yaml", Samples.service(name: "web", replicas: replicas, port: 18080))
        try root.write("manifests/backup.yaml", Samples.backup(name: "web-data"))
        try root.write("manifests/monitor.yaml", Samples.monitor(name: "web-up", port: 18080))
        try root.write("manifests/notifier.yaml", Samples.notifier(name: "ops-log"))
    }

    /// Signs the manifests as `signers` in turn (the first makes the release, the others add to it).
    @discardableResult
    public func sign(_ signers: [String], renew: Bool = false, validity: Double = 30 * 86_400, now: Date = Date()) throws
        -> ReleaseSigner.Result
    {
        var last: ReleaseSigner.Result?
        for (index, name) in signers.enumerated() {
            guard let key = keys[name] else { throw TestFailure("no key \(name)") }
            var signer = ReleaseSigner(directory: manifests, key: key, trust: nil)
            signer.force = true
            signer.renew = renew && index == 0
            signer.validity = .init(milliseconds: Int64(validity * 1000))
            last = try signer.sign(now: now)
        }
        return last!
    }
}

/// Manifest texts used by tests, the benchmark and the example.
public enum Samples {
    public static func service(name: String, replicas: Int, port: Int, command: String = "[python3, -m, http.server]") -> String {
        """
        apiVersion: stet/v1
        kind: Service
        metadata:
          name: \(name)
          labels: {team: shop, tier: web}
        spec:
          replicas: \(replicas)
          run:
            command: \(command)
            workingDir: /srv/\(name)
            env: {LOG_LEVEL: info}
            ports: {start: \(port)}
            stopSignal: SIGTERM
            stopTimeout: 10s
          health:
            http: {path: /}
            interval: 5s
            timeout: 2s
            failureThreshold: 3
            startPeriod: 10s
          restart:
            backoff: {initial: 500ms, max: 1m}
          update: {maxUnavailable: 1}
          drift: correct

        """
    }

    public static func backup(name: String) -> String {
        """
        apiVersion: stet/v1
        kind: BackupPolicy
        metadata: {name: \(name)}
        spec:
          paths: [/srv/web/data]
          exclude: ["*.tmp"]
          repository:
            restic: {repo: /srv/backup/web, passwordFile: /etc/stet/restic-web.password}
          every: 1h
          rpo: 2h
          retention: {last: 5, hourly: 24, daily: 7, weekly: 4, monthly: 6}
          verify: {check: 1d, restoreTest: 7d}
          protect: true

        """
    }

    public static func monitor(name: String, port: Int, notifier: String = "ops-log") -> String {
        """
        apiVersion: stet/v1
        kind: Monitor
        metadata: {name: \(name)}
        spec:
          probe:
            http: {url: "http://127.0.0.1:\(port)/", expectStatus: 200}
          interval: 10s
          timeout: 2s
          for: 30s
          severity: critical
          labels: {team: shop}
          notify: [\(notifier)]

        """
    }

    public static func notifier(name: String) -> String {
        """
        apiVersion: stet/v1
        kind: Notifier
        metadata: {name: \(name)}
        spec:
          log: {}

        """
    }
}
