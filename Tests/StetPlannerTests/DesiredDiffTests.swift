import Foundation
import StetCore
import StetPlanner
import Testing

/// The desired-state diff of a proposal: per resource and field, old → new, bounded.
@Suite struct DesiredDiffTests {
    static func web(replicas: Int, env: [String: String] = ["LOG_LEVEL": "info"]) -> Service {
        Service(
            metadata: Metadata(name: "web", labels: ["team": "shop"]), replicas: replicas,
            run: Service.Run(command: ["python3", "-m", "http.server"], env: env, portsStart: 18080),
            health: Service.Health(check: .http(url: nil, path: "/", port: nil, expectStatus: nil, bodyContains: nil)))
    }

    static func data(rpo: StetDuration, repository: String = "/srv/backup/web") -> BackupPolicy {
        BackupPolicy(
            metadata: Metadata(name: "data"), paths: ["/srv/web/data", "/srv/web/uploads"], resticRepository: repository,
            passwordFile: "/etc/stet/restic.pw", every: .seconds(3600), rpo: rpo, retention: .init(last: 5))
    }

    static func state(_ services: [Service], _ policies: [BackupPolicy] = [], notifiers: [Notifier] = []) -> DesiredState {
        var state = DesiredState()
        for service in services { state.services[service.metadata.name] = service }
        for policy in policies { state.backupPolicies[policy.metadata.name] = policy }
        for notifier in notifiers { state.notifiers[notifier.metadata.name] = notifier }
        return state
    }

    @Test func aReplicaAddedAndAnRPOChangedAreTwoFieldChanges() {
        let old = Self.state([Self.web(replicas: 1)], [Self.data(rpo: .seconds(7200))])
        let new = Self.state([Self.web(replicas: 2)], [Self.data(rpo: .seconds(4 * 3600))])
        let diff = DesiredDiff(from: old, to: new)
        #expect(diff.resources.map(\.resource.description) == ["Service/web", "BackupPolicy/data"])
        let fields = diff.resources.flatMap { resource in resource.fields.map { "\(resource.resource) \($0.path) \($0.old ?? "-") → \($0.new ?? "-")" } }
        #expect(Set(fields) == ["Service/web spec.replicas 1 → 2", "BackupPolicy/data spec.rpo 2h → 4h"])
        #expect(diff.resources.allSatisfy { $0.change == .changed })
    }

    @Test func addedAndRemovedResourcesListTheirFields() {
        let log = Notifier(metadata: Metadata(name: "ops"), target: .log)
        let diff = DesiredDiff(from: Self.state([Self.web(replicas: 1)]), to: Self.state([], notifiers: [log]))
        let byID = Dictionary(uniqueKeysWithValues: diff.resources.map { ($0.resource.description, $0) })
        #expect(byID["Service/web"]?.change == .removed)
        #expect(byID["Service/web"]?.fields.contains { $0.path == "spec.replicas" && $0.old == "1" && $0.new == nil } == true)
        #expect(byID["Service/web"]?.fields.contains { $0.path == "spec.run.command" && $0.old == "[python3, -m, http.server]" } == true)
        #expect(byID["Notifier/ops"]?.change == .added)
        #expect(byID["Notifier/ops"]?.fields == [DesiredDiff.Field(path: "spec.log", old: nil, new: "{}")])
        #expect(DesiredDiff(from: Self.state([Self.web(replicas: 1)]), to: Self.state([Self.web(replicas: 1)])).isEmpty)
    }

    /// An environment value may be a secret: only its digest is shown, so a change is visible
    /// and the value is not.
    @Test func environmentValuesAppearOnlyAsDigests() {
        let diff = DesiredDiff(from: Self.state([Self.web(replicas: 1)]), to: Self.state([Self.web(replicas: 1, env: ["LOG_LEVEL": "s3cr3t-token"])]))
        let field = diff.resources.first?.fields.first
        #expect(field?.path == "spec.run.env.LOG_LEVEL")
        #expect(field?.old?.hasPrefix("sha256:") == true && field?.new?.hasPrefix("sha256:") == true && field?.old != field?.new)
        #expect(!"\(diff)".contains("s3cr3t-token") && !"\(diff)".contains("info"))
    }

    /// Unsigned input is bounded: a value of a megabyte is cut, with its length said, and a
    /// resource with thousands of changed fields lists a hundred and counts the rest.
    @Test func valuesAndFieldsAreBounded() {
        let long = String(repeating: "x", count: 1 << 20)
        var labels: [String: String] = [:]
        for index in 0..<5000 { labels["l\(index)"] = "v" }
        var new = Self.web(replicas: 1)
        new.metadata.labels = labels
        new.run.command = [long]
        let diff = DesiredDiff(from: Self.state([Self.web(replicas: 1)]), to: Self.state([new]))
        let resource = diff.resources[0]
        #expect(resource.fields.count == DesiredDiff.maximumFields)
        // 5,000 labels added, the old label `team` gone, the command changed.
        #expect(resource.moreFields == 5002 - DesiredDiff.maximumFields)
        let values = resource.fields.compactMap(\.new) + resource.fields.compactMap(\.old)
        #expect(values.allSatisfy { $0.count <= DesiredDiff.maximumValueLength + 40 })
        let report = ProposalReport(diff: diff, plan: Plan(id: "plan-0000000000000000", createdAt: "", release: .none, changes: [], notices: []),
                                    base: "release version 1", observed: "this host")
        #expect(report.markdown().utf8.count < 64 << 10)
        #expect(report.text().contains("more fields not shown"))
    }

    /// The pull request comment: the heading says it is unsigned and not applicable, the
    /// summary counts, the field rows and the changes; text from the proposal is a cell's text.
    @Test func markdownForAPullRequest() {
        var new = Self.state([Self.web(replicas: 2)], [Self.data(rpo: .seconds(4 * 3600), repository: "/srv/| ![x](http://e/)")])
        new.services["web"]?.metadata.labels["team"] = "<details>"
        let diff = DesiredDiff(from: Self.state([Self.web(replicas: 1)], [Self.data(rpo: .seconds(7200))]), to: new)
        let change = Change(
            resource: ResourceID(.service, "web", replica: 1), action: .service(.startReplica), cause: .config,
            reason: Reason("replica-missing", "replica 1 of 2 is not running"), before: nil, after: nil, disruption: .none, precondition: "")
        let plan = Plan(id: "plan-0000000000000000", createdAt: "", release: .none, changes: [change], notices: [])
        let markdown = ProposalReport(diff: diff, plan: plan, base: "release version 1", observed: "this host").markdown()
        #expect(markdown.hasPrefix("### stet plan for an unsigned proposal (not applicable)"))
        #expect(markdown.contains("| resources changed | 2 |"))
        #expect(markdown.contains("| config changes | 1 |"))
        #expect(markdown.contains("| `Service/web` | changed | `spec.replicas` | 1 | 2 |"))
        #expect(markdown.contains("| `BackupPolicy/data` | changed | `spec.rpo` | 2h | 4h |"))
        #expect(markdown.contains("| `Service/web#1` | start-replica | config | replica 1 of 2 is not running |"))
        #expect(markdown.contains("\\<details\\>") && !markdown.contains("<details>"))
        #expect(markdown.contains("/srv/\\| !\\[x\\](http://e/)"))
    }
}
