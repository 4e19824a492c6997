import ArgumentParser
import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetEngine
import StetManifest
import StetPlanner
import StetProviders
import StetState

/// Options of the commands that plan: where the manifests are, and pruning.
struct ApplyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Make the host match the verified release: plan and apply, or apply a saved plan.",
        discussion: """
            Takes the state lock, verifies the release, plans, and asks for approval; only then \
            accepts the release (recorded in the audit log, and kept in the state directory) and \
            applies each change with an intent entry before and a result entry after. Declined, \
            nothing is accepted and the release in force stays. Without FILE it plans afresh. With \
            FILE it applies that signed plan only if it is for the release in force or for the \
            manifests' verified release, was never applied before, and every change's observed \
            facts still hold. Asks for confirmation on a terminal; elsewhere needs --auto-approve.

            Then it waits until every replica it started or replaced passes its health check \
            past its start period, as `stet status` counts it (--no-wait returns at once; a \
            rolling replacement still waits for each wave). The default bound per replica is \
            its start period plus failureThreshold intervals plus one check timeout. While \
            actions run, a terminal shows a live line per action; elsewhere each action gets a \
            line when it starts and when it ends, and a `still running` line every 10 s.

            With --cluster (CI): verifies the release here, prints where the fleet will run it, \
            and publishes it to the fleet's etcd with compare-and-swap (never over a newer release \
            or another of the same version: exit 10); then waits (--wait-timeout, default 120s) \
            until every live node runs it as assigned. The hosts' state directories play no part: \
            each node verifies the release again with its own pinned trust policy.

            A saved plan with --cluster is applied on this host, once across the fleet: its id is \
            claimed in etcd (plans/applied/ID, created only if absent) before its first action, \
            and a plan claimed already on any host is refused (exit 12).

            EXIT STATUS
              0   applied (or nothing to do)
              1   error, a change failed (the rest of its resource was skipped), a replica was \
                  not healthy in time (named, with its last check and its log), or not approved
              10  the release, the trust policy or the plan's signature was refused
              11  another stet process holds the state lock
              12  the saved plan is stale: another release, already applied (here, or in the fleet \
                  with --cluster), or the world changed
            """
    )

    @Argument(help: "A plan saved by `stet plan --out`.")
    var planFile: String?

    @OptionGroup var planning: PlanningOptions

    @OptionGroup var global: GlobalOptions

    @OptionGroup var key: KeyOption

    @OptionGroup var fleet: ClusterOptions

    @Flag(help: "Apply without asking.")
    var autoApprove = false

    @Flag(help: "Return once the changes are made, without waiting for new replicas to be healthy.")
    var noWait = false

    @Option(help: ArgumentHelp(
        "How long to wait for each new replica to be healthy (e.g. 30s, 2m); default: from its health settings.",
        valueName: "duration"))
    var waitTimeout: String?

    func validate() throws {
        guard let waitTimeout else { return }
        guard !noWait else { throw ValidationError("--wait-timeout: not with --no-wait") }
        guard case .success(let duration) = StetDuration.parse(waitTimeout), duration.milliseconds > 0,
            duration <= StetDuration.maximumTimeout
        else {
            throw ValidationError(
                "--wait-timeout \(TextEscaping.excerpt(waitTimeout, limit: 40)): expected a duration from 1ms to \(StetDuration.maximumTimeout) (e.g. 30s, 2m)")
        }
    }

    /// What `ApplyRelease` waits for after applying.
    private var wait: ApplyRelease.Wait {
        noWait ? .none : .healthy(timeout: waitTimeout.flatMap { StetDuration(parsing: $0)?.seconds })
    }

    func run() async throws {
        if fleet.cluster != nil && planFile == nil { return try await runOnFleet() }
        let source = try planning.gitSource(global.store)
        let privateKey = try PrivateKey(contentsOfFile: try key.path())
        let lock = try StateLock(store: global.store, timeout: global.lockTimeout)
        defer { lock.release() }
        let saved = try planFile.map { try readSavedPlan($0, key: privateKey) }
        let apply = try ApplyRelease.open(
            store: global.store, saved: saved?.plan,
            by: ReleaseAcceptance.Operator(key: privateKey, repositoryTrust: global.trust, lockTimeout: global.lockTimeout), now: Date()
        ) {
            let (gate, commit) = try planning.gate(global, source: source)
            return ApplyRelease.Source(
                gate: gate, commit: commit, name: commit.map { "\(planning.source ?? "") at commit \($0)" } ?? planning.manifests)
        }
        let session = OperatorSession(apply)
        defer { try? session.close() }
        var provider = HostProvider(store: global.store)
        // A pruned monitor's firing alert is resolved at once; a `log` notifier writes to standard error.
        let sender = NotifierSender { Terminal.standardError.line($0) }
        provider.monitors = MonitorRegistry(store: global.store) { alerts, notifier in sender.send(alerts, to: notifier) }
        let json = global.json
        let autoApprove = autoApprove
        let claimed = saved != nil && fleet.cluster != nil
        let progress = ApplyProgress()
        if !json { progress.start() }
        defer { progress.stop() }
        let outcome = try await apply.run(
            provider: provider, saved: saved, prune: planning.prune, wait: wait,
            hooks: ApplyRelease.Hooks(
                interrupted: { count in
                    Terminal.standardOutput.warning("\(count) action(s) of an earlier run were interrupted; recorded, and the host is observed again")
                },
                planned: { plan in if !json || plan.changes.isEmpty { Terminal.standardOutput.write(PlanOutput.text(plan)) } },
                approve: { plan in autoApprove ? .approved : Self.approval(plan, release: apply.release) },
                progress: { event in if !json { progress.handle(event) } },
                // With --cluster, a saved plan is claimed across the fleet once approved, before its first action.
                claim: { plan in if claimed { try await self.claimInFleet(plan, key: privateKey, session: session) } }))
        progress.stop()
        if outcome.plan.changes.isEmpty { return }
        if !json { await PlanOutput.probeOnce(apply.desired, store: global.store, provider: provider) }
        ApplyOutput.report(outcome.report, plan: outcome.plan, json: global.json)
        if outcome.report.failed { throw CommandFailure(status: ExitStatus.error, message: nil) }
    }

    /// A saved plan signed by an operator key of the policy in force, in the planner's form; a
    /// refusal (exit 10) is recorded.
    private func readSavedPlan(_ file: String, key: PrivateKey) throws -> ApplyRelease.SavedPlan {
        let data = try readInput(file, limit: InputFile.Limit.plan, what: "saved plan")
        do {
            return try ApplyRelease.readPlan(data, source: file, store: global.store, repositoryTrust: global.trust)
        } catch let refused as PlanFile.Refused {
            OperatorSession.recordEarlyRefusal(
                global: global, key: key, action: "apply", reason: "saved plan \(file) was refused", error: refused.message)
            throw refused
        }
    }

    /// Asks on the terminal: only "yes" approves; no terminal is no approval.
    private static func approval(_ plan: Plan, release: ReleaseRef) -> ApplyRelease.Approval {
        guard isatty(0) == 1 else {
            return .withheld(
                how: "was not approved", why: "not on a terminal and no --auto-approve",
                message: "not on a terminal: pass --auto-approve to apply without asking")
        }
        Terminal.standardOutput.write("Apply these \(plan.changes.count) changes? Only 'yes' applies: ")
        guard readLine()?.trimmingCharacters(in: .whitespaces) == "yes" else {
            return .withheld(how: "was declined", why: "declined at the prompt", message: "not applied")
        }
        return .approved
    }
}
