import ArgumentParser
import Foundation
import StetCore
import StetEngine
import StetFleet
import StetManifest
import StetState

/// What `status`, `plan` and `apply` do with `--cluster`: read the fleet from etcd, each value
/// verified under this host's trust policy (the pinned one, else the repository's), as a node would.
enum FleetCommands {
    /// The trust a fleet command reads with: pinned here, else the repository's policy.
    static func trust(_ global: GlobalOptions) throws -> TrustPolicy {
        if let pinned = try PinnedTrust.load(from: global.store) { return pinned }
        guard FileManager.default.fileExists(atPath: global.trust) else {
            throw CommandFailure(
                status: ExitStatus.error,
                message: "no trust policy to read the fleet with: none is pinned in \(global.store.root) and \(global.trust) does not exist")
        }
        return try TrustPolicy.load(file: global.trust)
    }

    /// A private scratch folder in the state directory, removed when `body` returns.
    static func withScratch<T>(_ global: GlobalOptions, _ body: (String) async throws -> T) async throws -> T {
        let scratch = global.store.path("fleet/scratch-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        return try await body(scratch)
    }

    static func read(_ cluster: ClusterOptions, _ global: GlobalOptions) async throws -> FleetView {
        let trust = try trust(global)
        let keyspace = try cluster.keyspace()
        return try await withClient(cluster) { client in
            try await withScratch(global) { scratch in
                await FleetView.read(client: client, keyspace: keyspace, trust: trust, scratch: scratch)
            }
        }
    }

    /// The etcd client of `--cluster`, shut down when `body` returns (an HTTP client must be).
    static func withClient<T>(_ cluster: ClusterOptions, timeout: Double = 2, _ body: (EtcdClient) async throws -> T) async throws -> T {
        guard let client = try cluster.client(timeout: timeout) else {
            throw CommandFailure(status: ExitStatus.error, message: "--cluster is required")
        }
        do {
            let value = try await body(client)
            try? await client.shutdown()
            return value
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// `stet status --cluster`: nodes, the leader, lease ages, assignments and what runs where.
    static func printStatus(_ view: FleetView, json: Bool) {
        let out = Terminal.standardOutput
        if json {
            out.json(view)
            return
        }
        guard view.reachable else {
            out.line("cluster    \(view.cluster): etcd is unreachable (\(view.error ?? "no answer")); the nodes keep running what they have")
            return
        }
        out.line("cluster    \(view.cluster)")
        if let release = view.release {
            out.line("release    version \(release.version) (\(release.digest))")
        } else {
            out.line("release    none" + (view.releaseProblem.map { ": release/current does not verify: \($0)" } ?? ""))
        }
        out.line("leader     \(view.leader ?? "none")" + (view.epoch.map { " (epoch \($0))" } ?? ""))
        out.line("nodes      \(view.nodes.count) live")
        for node in view.nodes {
            let labels = node.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            let lease = node.leaseLeft.map { "lease \($0) s left" } ?? "lease unknown"
            var flags = [lease]
            if node.leader { flags.append("leader") }
            if let status = node.status {
                if !status.acting { flags.append("NOT ACTING (cannot renew its lease)") }
                flags.append("release v\(status.releaseVersion)")
            }
            out.line("  \(node.name)  \(labels.isEmpty ? "-" : labels)  \(flags.joined(separator: ", "))")
            let running = node.status?.replicas.filter { $0.state == "running" } ?? []
            let unhealthy = node.status?.replicas.filter { $0.state == "unhealthy" } ?? []
            out.line("    assigned  \(node.assigned.isEmpty ? "nothing" : node.assigned.joined(separator: " "))")
            out.line("    running   " + (running.isEmpty ? "nothing" : running.map { "\($0.service)/\($0.index) (pid \($0.pid))" }.joined(separator: " "))
                + (unhealthy.isEmpty ? "" : "; unhealthy: " + unhealthy.map { "\($0.service)/\($0.index)" }.joined(separator: " ")))
        }
        for status in view.departed {
            out.line("  \(status.node)  DOWN (no lease); last status \(status.time)")
        }
        for (service, primary) in view.primaries.sorted(by: { $0.key < $1.key }) {
            let last = view.nodes.first { $0.name == primary.node }?.status?.primaries?.first { $0.service == service }?.lastFailover
            out.line("primary    service/\(service): replica \(primary.index) on \(primary.node) since \(primary.since)"
                + (last.map { "; last failover \($0.durationMs) ms" + ($0.from.map { " from \($0)" } ?? "") + " at \($0.at)" } ?? ""))
        }
        for (workload, node) in view.orphaned.sorted(by: { $0.key < $1.key }) {
            out.line("  \(workload) is still assigned to \(node), which is down: a leader moves it")
        }
        for (key, why) in view.ignored.sorted(by: { $0.key < $1.key }) { out.warning("ignored \(key): \(why)") }
    }

    /// `stet audit list --cluster`: where each node's log lives, from its last published status.
    static func printAuditLogs(_ view: FleetView, json: Bool) {
        struct Row: Encodable {
            var node: String
            var live: Bool
            var auditLog: String?
            var entries: Int?
            var asOf: String?
        }
        var rows = view.nodes.map { Row(node: $0.name, live: true, auditLog: $0.status?.auditLog, entries: $0.status?.auditEntries, asOf: $0.status?.time) }
        rows += view.departed.map { Row(node: $0.node, live: false, auditLog: $0.auditLog, entries: $0.auditEntries, asOf: $0.time) }
        let out = Terminal.standardOutput
        if json {
            for row in rows { out.json(row) }
            return
        }
        for row in rows {
            out.line("\(row.node)\(row.live ? "" : " (down)")  \(row.auditLog ?? "no status published yet")"
                + (row.entries.map { "  \($0) entries as of \(row.asOf ?? "?")" } ?? ""))
        }
        if rows.isEmpty { Terminal.standardError.line("no nodes in cluster \(view.cluster)") }
    }
}
