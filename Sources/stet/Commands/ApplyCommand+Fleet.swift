import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetEngine
import StetFleet
import StetManifest
import StetState

extension ApplyCommand {
    /// `stet apply --cluster`: verifies the release here (as CI, with the repository's trust
    /// policy or the pinned one), publishes it to `release/current` with compare-and-swap, prints
    /// where the fleet will run it, and waits until the fleet runs it. The hosts' state directories
    /// play no part: every node verifies the release again with its own pinned trust.
    func runOnFleet() async throws {
        let privateKey = try PrivateKey(contentsOfFile: try key.path())
        let (gate, commit) = try planning.gate(global, source: try planning.gitSource(global.store))
        let (session, passed) = try OperatorSession.verified(
            gate: gate, global: global, key: privateKey, action: "publish-release", directory: commit.map { "commit \($0)" } ?? planning.manifests)
        defer { try? session.close() }
        let release = passed.release.release
        let keyspace = try fleet.keyspace()
        let out = Terminal.standardOutput
        let autoApprove = autoApprove
        try await FleetCommands.withClient(fleet) { client in
            let view = try await FleetCommands.withScratch(global) { scratch in
                await FleetView.read(client: client, keyspace: keyspace, trust: passed.trust.policy, scratch: scratch)
            }
            guard view.reachable else {
                throw CommandFailure(status: ExitStatus.error, message: "cluster \(keyspace.cluster): etcd is unreachable: \(view.error ?? "no answer")")
            }
            out.write(FleetCommands.plan(view, desired: passed.desired, release: release, inForce: view.release))
            if !autoApprove {
                guard isatty(0) == 1 else {
                    throw CommandFailure(status: ExitStatus.error, message: "not on a terminal: pass --auto-approve to publish without asking")
                }
                out.write("Publish release version \(release.version) to cluster \(keyspace.cluster)? Only 'yes' publishes: ")
                guard readLine()?.trimmingCharacters(in: .whitespaces) == "yes" else {
                    throw CommandFailure(status: ExitStatus.error, message: "not published")
                }
            }
            let outcome: FleetPublish.Outcome
            do {
                outcome = try await FleetCommands.withScratch(global) { scratch in
                    try await FleetPublish(client: client, keyspace: keyspace, trust: passed.trust.policy).publish(passed.release, scratch: scratch)
                }
            } catch let refused as FleetPublish.Refused {
                try session.refused(action: "publish-release", reason: "release version \(release.version) was not published to cluster \(keyspace.cluster)",
                                    error: refused.description)
                throw CommandFailure(status: ExitStatus.refused, message: "refused: \(refused.description)")
            }
            switch outcome {
            case .current:
                out.line("release version \(release.version) is already the fleet's release in cluster \(keyspace.cluster)")
            case .published(let replaced):
                _ = try session.log.append([AuditRecord(
                    kind: .release, release: release, action: "publish-release",
                    reason: "published to cluster \(keyspace.cluster)" + (replaced.map { ", replacing version \($0.version)" } ?? ""),
                    outcome: .ok)])
                out.line("published release version \(release.version) to cluster \(keyspace.cluster)"
                    + (replaced.map { " (was version \($0.version))" } ?? ""))
            }
        }
        if noWait { return }
        let timeout = waitTimeout.flatMap { StetDuration(parsing: $0)?.seconds } ?? 120
        try await FleetCommands.waitConverged(fleet, global, release: release, desired: passed.desired, trust: passed.trust.policy, timeout: timeout)
    }
}

extension ApplyCommand {
    /// `stet apply PLAN --cluster URLS` on a host: the saved plan is applied here, once across the
    /// whole fleet. Its id is claimed in `plans/applied/ID` with a transaction that creates the
    /// key; a plan claimed already (on any host) is refused (exit 12) and the refusal recorded.
    /// The claim comes once the plan is admitted here and approved, just before its first action.
    func claimInFleet(_ plan: Plan, key privateKey: PrivateKey, session: OperatorSession) async throws {
        let keyspace = try fleet.keyspace()
        let trust = try FleetCommands.trust(global)
        let claim = AppliedPlan(
            plan: plan.id, host: Checkpoint.hostName, stateDirectory: global.store.root, appliedAt: RFC3339.format(Date(), milliseconds: true))
        let sealed = try FleetSigned.seal(claim, type: FleetSigned.appliedPlanType, key: privateKey)
        let earlier: AppliedPlan?? = try await FleetCommands.withClient(fleet) { client in
            let key = keyspace.appliedPlan(plan.id)
            let outcome = try await client.transaction([.absent(key)], success: [.put(key, sealed, lease: 0)], failure: [.get(key)])
            if outcome.succeeded { return .none }
            let value = outcome.read.first?.value ?? Data()
            if case .success(let (found, _)) = FleetSigned.open(value, type: FleetSigned.appliedPlanType, as: AppliedPlan.self, trust: trust, role: .operator),
                found.plan == plan.id
            {
                return .some(found)
            }
            return .some(nil)
        }
        guard let earlier else { return }
        let message = "plan \(plan.id) was applied already in cluster \(keyspace.cluster)"
            + (earlier.map { " (on \($0.host), state directory \($0.stateDirectory), at \($0.appliedAt))" } ?? " (its claim in etcd does not verify)")
            + "; a saved plan is single use across the fleet"
        try session.refused(action: "apply", reason: "saved plan \(plan.id) was refused", error: message)
        throw CommandFailure(status: ExitStatus.stale, message: message)
    }
}

extension FleetCommands {
    /// Where the fleet will run the release: the leader's placement, worked out from what is in
    /// etcd now (live nodes and current assignments), as text.
    static func plan(_ view: FleetView, desired: DesiredState, release: ReleaseRef, inForce: ReleaseRef?) -> String {
        var text = "fleet plan for cluster \(view.cluster): release version \(release.version)"
            + (inForce.map { $0.digest == release.digest ? " (in force already)" : " (replacing version \($0.version))" } ?? " (the first)")
            + ", \(view.nodes.count) live node\(view.nodes.count == 1 ? "" : "s")"
            + (view.leader.map { ", leader \($0)" } ?? ", no leader yet") + "\n"
        let nodes = view.nodes.map { Placement.Node(name: $0.name, labels: $0.labels) }
        var current: [Placement.Slot: String] = [:]
        for node in view.nodes {
            for key in node.assigned {
                if case .replica(let service, let index)? = Workload(key: key) { current[Placement.Slot(service: service, index: index)] = node.name }
            }
        }
        let services = desired.services.values.sorted { $0.metadata.name < $1.metadata.name }
        let placed = Placement().place(
            services.map { Placement.Service(name: $0.metadata.name, replicas: $0.replicas, selector: $0.placement, spread: $0.spread) },
            on: nodes, current: current)
        for service in services {
            let name = service.metadata.name
            var byNode: [String: [Int]] = [:]
            var moves = 0
            for index in 0..<max(service.replicas, 0) {
                let slot = Placement.Slot(service: name, index: index)
                guard let node = placed.assignments[slot] else { continue }
                byNode[node, default: []].append(index)
                if current[slot] != node { moves += 1 }
            }
            let spread = byNode.sorted { $0.key < $1.key }.map { "\($0.key) [\($0.value.map(String.init).joined(separator: ","))]" }
            text += "  service/\(name): \(service.replicas) replica\(service.replicas == 1 ? "" : "s") on \(spread.isEmpty ? "no node" : spread.joined(separator: ", "))"
            text += moves == 0 ? "\n" : " (\(moves) to start)\n"
        }
        let unplaced = placed.unplaced.filter { slot in services.contains { $0.metadata.name == slot.service } }
        if !unplaced.isEmpty {
            text += "  no live node matches: " + unplaced.map { "\($0.service)/\($0.index)" }.joined(separator: ", ") + "\n"
        }
        return text
    }

    /// Polls the fleet until it runs `release` as assigned, saying what it waits for every 10 s.
    static func waitConverged(
        _ cluster: ClusterOptions, _ global: GlobalOptions, release: ReleaseRef, desired: DesiredState, trust: TrustPolicy, timeout: Double
    ) async throws {
        let keyspace = try cluster.keyspace()
        let deadline = Date().addingTimeInterval(timeout)
        var lastSaid = Date()
        let out = Terminal.standardOutput
        try await withClient(cluster) { client in
            try await withScratch(global) { scratch in
                while true {
                    let view = await FleetView.read(client: client, keyspace: keyspace, trust: trust, scratch: scratch)
                    let (done, waiting) = view.reachable ? view.converged(on: release, desired: desired) : (false, ["etcd to answer"])
                    if done {
                        out.line("the fleet runs release version \(release.version): every replica runs where it is assigned")
                        return
                    }
                    if Date() >= deadline {
                        throw CommandFailure(
                            status: ExitStatus.error,
                            message: "the fleet did not converge on release version \(release.version) within \(Int(timeout)) s; still waiting for: "
                                + waiting.prefix(10).joined(separator: "; "))
                    }
                    if Date().timeIntervalSince(lastSaid) >= 10 {
                        lastSaid = Date()
                        out.line("waiting for " + waiting.prefix(3).joined(separator: "; ") + (waiting.count > 3 ? " (and \(waiting.count - 3) more)" : ""))
                    }
                    try await Task.sleep(nanoseconds: 500_000_000)
                }
            }
        }
    }
}
