import Foundation
@testable import StetFleet
import StetCore
import StetCrypto
import StetManifest
import StetTesting
import Testing

/// What a fleet reads from etcd is out of anyone's control: keys, release files and assignments
/// are checked before use.
@Suite struct FleetFormsTests {
    let keys = try! FleetKeyspace(cluster: "prod")

    @Test func onlyKeysOfTheKnownFormsAreParsed() throws {
        #expect(keys.parse("/stet/prod/release/current") == .release)
        #expect(keys.parse("/stet/prod/leader") == .leader)
        #expect(keys.parse("/stet/prod/nodes/host-a") == .node("host-a"))
        #expect(keys.parse("/stet/prod/assignments/service/web/3") == .assignment(.replica(service: "web", index: 3)))
        #expect(keys.parse("/stet/prod/assignments/backup/db") == .assignment(.backup("db")))
        #expect(keys.parse("/stet/prod/assignments/monitor/up") == .assignment(.monitor("up")))
        #expect(keys.parse("/stet/prod/primary/db") == .primary("db"))
        #expect(keys.parse("/stet/prod/switchover/db") == .switchover("db"))
        #expect(keys.parse("/stet/prod/plans/applied/plan-0123456789abcdef") == .appliedPlan("plan-0123456789abcdef"))
        for hostile in [
            "/stet/prod/primary/../leader", "/stet/prod/primary/db/0", "/stet/prod/switchover/DB", "/stet/prod/plans/applied/../x",
            "/stet/prod/plans/applied/plan-xyz", "/stet/prod/plans/other/plan-0123456789abcdef",
            "/stet/other/leader", "/stet/prod/nodes/../leader", "/stet/prod/nodes/Host", "/stet/prod/nodes/a/b",
            "/stet/prod/assignments/service/web/-1", "/stet/prod/assignments/service/web/03", "/stet/prod/assignments/service/web/1000",
            "/stet/prod/assignments/service/web/99999999999999999999", "/stet/prod/assignments/service/web", "/stet/prod/assignments/job/x",
            "/stet/prod/status/", "/stet/prod/release/other",
        ] {
            #expect(keys.parse(hostile) == nil, "\(hostile)")
        }
        #expect(throws: FleetError.self) { try FleetKeyspace(cluster: "a/b") }
        for workload in [Workload.replica(service: "web", index: 0), .backup("db"), .monitor("up")] {
            #expect(Workload(key: workload.key) == workload)
        }
    }

    @Test func releaseFilesAreNamedPlainlyAndWrittenInOneStep() throws {
        let folder = TemporaryDirectory("stet-fleet-release")
        let good = FleetRelease(version: 2, digest: "sha256:x", envelope: Data("{}".utf8), files: [
            .init(path: "web.yaml", bytes: Data("a".utf8)), .init(path: "team/db.yaml", bytes: Data("b".utf8)),
        ])
        let decoded = try FleetRelease.decode(try good.encoded())
        #expect(decoded == good)
        let target = folder.file("release")
        try decoded.materialise(at: target)
        #expect(FileManager.default.contents(atPath: target + "/team/db.yaml") == Data("b".utf8))
        #expect(FileManager.default.contents(atPath: target + "/release.dsse.json") == Data("{}".utf8))
        // A second release replaces the first whole: no file of the first is left.
        let next = FleetRelease(version: 3, digest: "sha256:y", envelope: Data("{ }".utf8), files: [.init(path: "web.yaml", bytes: Data("c".utf8))])
        try next.materialise(at: target)
        #expect(FileManager.default.contents(atPath: target + "/web.yaml") == Data("c".utf8))
        #expect(!FileManager.default.fileExists(atPath: target + "/team/db.yaml"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasPrefix(".incoming") }.isEmpty)

        for path in ["../x.yaml", "/etc/passwd", "a//b", "./a", "a/../../b", "", "release.dsse.json", "a b.yaml", "a\u{0}b",
                     String(repeating: "a/", count: 20) + "x", String(repeating: "x", count: 300)] {
            let bad = FleetRelease(version: 1, digest: "d", envelope: Data(), files: [.init(path: path, bytes: Data())])
            #expect(throws: FleetError.self, "\(path)") { try FleetRelease.decode(try bad.encoded()) }
        }
        let twice = FleetRelease(version: 1, digest: "d", envelope: Data(), files: [.init(path: "a", bytes: Data()), .init(path: "a", bytes: Data())])
        #expect(throws: FleetError.self) { try FleetRelease.decode(try twice.encoded()) }
        let many = FleetRelease(version: 1, digest: "d", envelope: Data(), files: (0...FleetRelease.maximumFiles).map { .init(path: "f\($0)", bytes: Data()) })
        #expect(throws: FleetError.self) { try FleetRelease.decode(try many.encoded()) }
        #expect(throws: FleetError.self) { try FleetRelease.decode(Data("[1,2]".utf8)) }
    }

    @Test func signedValuesOpenOnlyWithANodeKeyOfThePolicy() throws {
        var repo = RepositoryFixture()
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ops"]), node: (1, ["host-a"]))
        let trust = try TrustPolicy.load(file: repo.trustFile)
        let assignment = Assignment(workload: .replica(service: "web", index: 1), node: "host-a", release: "sha256:x", epoch: 7, leader: "host-a")
        let sealed = try FleetSigned.seal(assignment, type: FleetSigned.assignmentType, key: repo.keys["host-a"]!)
        guard case .success(let (opened, signer)) = FleetSigned.open(sealed, type: FleetSigned.assignmentType, as: Assignment.self, trust: trust) else {
            Issue.record("a node's assignment did not open")
            return
        }
        #expect(opened == assignment && signer == "host-a")
        // An operator key, a stranger's key, another payload type, a changed payload: refused.
        let byOperator = try FleetSigned.seal(assignment, type: FleetSigned.assignmentType, key: repo.keys["ops"]!)
        let byStranger = try FleetSigned.seal(assignment, type: FleetSigned.assignmentType, key: try PrivateKey.generate())
        let asStatus = try FleetSigned.seal(assignment, type: FleetSigned.statusType, key: repo.keys["host-a"]!)
        var envelope = try Envelope(json: sealed)
        envelope.payload = Data(String(decoding: envelope.payload, as: UTF8.self).replacingOccurrences(of: "host-a", with: "host-b").utf8)
        for data in [byOperator, byStranger, asStatus, envelope.json(), Data("not json".utf8)] {
            guard case .failure = FleetSigned.open(data, type: FleetSigned.assignmentType, as: Assignment.self, trust: trust) else {
                Issue.record("opened \(String(decoding: data.prefix(200), as: UTF8.self))")
                continue
            }
        }
    }

    @Test func aNodesShareIsWhatIsAssignedToIt() {
        var desired = DesiredState()
        desired.services["web"] = Service(metadata: Metadata(name: "web"), replicas: 4, run: Service.Run(command: ["true"]))
        desired.backupPolicies["db"] = BackupPolicy(
            metadata: Metadata(name: "db"), paths: ["/x"], resticRepository: "/r", passwordFile: "/p", every: .seconds(60), rpo: .seconds(120),
            retention: .init(last: 1))
        desired.monitors["up"] = Monitor(metadata: Metadata(name: "up"), probe: .service("web"))
        let assignments: [Workload: Assignment] = [
            .replica(service: "web", index: 0): Assignment(workload: .replica(service: "web", index: 0), node: "a", release: "r", epoch: 1, leader: "a"),
            .replica(service: "web", index: 2): Assignment(workload: .replica(service: "web", index: 2), node: "b", release: "r", epoch: 1, leader: "a"),
            .replica(service: "web", index: 3): Assignment(workload: .replica(service: "web", index: 3), node: "a", release: "r", epoch: 1, leader: "a"),
            .backup("db"): Assignment(workload: .backup("db"), node: "b", release: "r", epoch: 1, leader: "a"),
            .monitor("up"): Assignment(workload: .monitor("up"), node: "a", release: "r", epoch: 1, leader: "a"),
        ]
        let a = FleetNode.share(of: desired, for: "a", in: assignments)
        #expect(a.replicaIndices(of: desired.services["web"]!) == [0, 3])
        #expect(a.backupPolicies.isEmpty && a.monitors.keys.sorted() == ["up"])
        let b = FleetNode.share(of: desired, for: "b", in: assignments)
        #expect(b.replicaIndices(of: desired.services["web"]!) == [2])
        #expect(b.backupPolicies.keys.sorted() == ["db"] && b.monitors.isEmpty)
        #expect(FleetNode.share(of: desired, for: "c", in: assignments).replicaIndices(of: desired.services["web"]!) == [])
        // One host (no assignments at all) runs every replica.
        #expect(desired.replicaIndices(of: desired.services["web"]!) == [0, 1, 2, 3])
    }

    @Test func theLeaderPlacesBackupsBesideTheirServiceAndMonitorsOnANodeEach() {
        var desired = DesiredState()
        desired.services["db"] = Service(metadata: Metadata(name: "db"), replicas: 2, run: Service.Run(command: ["true"]))
        var beside = BackupPolicy(
            metadata: Metadata(name: "db-data"), paths: ["/x"], resticRepository: "/r", passwordFile: "/p", every: .seconds(60),
            rpo: .seconds(120), retention: .init(last: 1))
        beside.runOn = "db"
        desired.backupPolicies["db-data"] = beside
        var anywhere = beside
        anywhere.metadata = Metadata(name: "logs")
        anywhere.runOn = nil
        desired.backupPolicies["logs"] = anywhere
        desired.monitors["up"] = Monitor(metadata: Metadata(name: "up"), probe: .service("db"))
        let nodes = ["a", "b", "c"].map { NodeRecord(name: $0, labels: [:], keyID: "", joinedAt: "", lease: 1) }
        let (target, unplaced) = FleetNode.place(desired, on: nodes, current: [:])
        #expect(unplaced.isEmpty)
        #expect(target[.backup("db-data")] == target[.replica(service: "db", index: 0)])
        #expect(target[.backup("logs")] != nil && target[.monitor("up")] != nil)
        #expect(target[.replica(service: "db", index: 0)] != target[.replica(service: "db", index: 1)])
        // The node of replica 0 dies: the backups follow replica 0 wherever it goes; the rest stays.
        let dead = target[.replica(service: "db", index: 0)]!
        var current: [Placement.Slot: String] = [:]
        for (workload, node) in target { current[FleetNode.slot(workload)] = node }
        let (after, _) = FleetNode.place(desired, on: nodes.filter { $0.name != dead }, current: current)
        #expect(after[.replica(service: "db", index: 0)] != dead)
        #expect(after[.backup("db-data")] == after[.replica(service: "db", index: 0)])
        for (workload, node) in target where node != dead { #expect(after[workload] == node, "\(workload) moved") }
        // No node at all: everything is unplaced, the backup beside its service too.
        let (none, left) = FleetNode.place(desired, on: [], current: [:])
        #expect(none.isEmpty && left.count == 5)
    }

    @Test func anAssignmentIsTakenOnlyWhenSignedForItsKeyAndNotOlder() throws {
        var repo = RepositoryFixture()
        try repo.writeTrust(root: (1, ["alice"]), release: (1, ["alice"]), operator: (1, ["ops"]), node: (1, ["host-a", "host-b"]))
        let trust = try TrustPolicy.load(file: repo.trustFile)
        let leader = repo.keys["host-a"]!
        let web0 = Workload.replica(service: "web", index: 0), web1 = Workload.replica(service: "web", index: 1)
        func sealed(_ workload: Workload, on node: String, epoch: Int64, sequence: Int64, key: PrivateKey? = nil) throws -> Data {
            try FleetSigned.seal(
                Assignment(workload: workload, node: node, release: "r", epoch: epoch, leader: "host-a", sequence: sequence),
                type: FleetSigned.assignmentType, key: key ?? leader)
        }
        var book = AssignmentBook()
        let first = try sealed(web0, on: "host-a", epoch: 5, sequence: 10)
        #expect(book.take([keys.assignment(web0): first, keys.assignment(web1): try sealed(web1, on: "host-b", epoch: 5, sequence: 10)],
                          keys: keys, trust: trust, whole: true).isEmpty)
        #expect(book.accepted[web0]?.node == "host-a" && book.accepted[web1]?.node == "host-b")

        // A later decision of the same epoch moves web/0; the earlier one, replayed, is refused.
        #expect(book.take([keys.assignment(web0): try sealed(web0, on: "host-b", epoch: 5, sequence: 20)], keys: keys, trust: trust, whole: false).isEmpty)
        let replay = book.take([keys.assignment(web0): first], keys: keys, trust: trust, whole: false)
        #expect(replay[keys.assignment(web0)]?.contains("older decision") == true && book.accepted[web0]?.node == "host-b")

        // A new leader's epoch; then the old epoch is refused everywhere.
        #expect(book.take([keys.assignment(web1): try sealed(web1, on: "host-a", epoch: 9, sequence: 30)], keys: keys, trust: trust, whole: false).isEmpty)
        let stale = book.take([keys.assignment(web0): try sealed(web0, on: "host-a", epoch: 5, sequence: 40)], keys: keys, trust: trust, whole: false)
        #expect(stale[keys.assignment(web0)]?.contains("epoch 5 is older") == true && book.accepted[web0]?.node == "host-b")

        // Signed for another key, by an operator key, or no envelope at all: refused, nothing changes.
        let before = book.accepted
        let copied = book.take([keys.assignment(web0): try sealed(web1, on: "host-a", epoch: 9, sequence: 50)], keys: keys, trust: trust, whole: false)
        #expect(copied[keys.assignment(web0)]?.contains("not for this key") == true)
        let byOperator = book.take(
            [keys.assignment(web0): try sealed(web0, on: "host-a", epoch: 9, sequence: 60, key: repo.keys["ops"]!)], keys: keys, trust: trust, whole: false)
        #expect(byOperator[keys.assignment(web0)]?.contains("not signed by a node key") == true)
        let junk = book.take([keys.assignment(web0): Data("{}".utf8), keys.assignments + "service/../x": Data()], keys: keys, trust: trust, whole: false)
        #expect(junk.count == 2)
        #expect(book.accepted == before)

        // A deletion, and a whole read without a key, both let the assignment go.
        _ = book.take([keys.assignment(web1): nil], keys: keys, trust: trust, whole: false)
        #expect(book.accepted[web1] == nil && book.accepted[web0] != nil)
        // An older decision put back after the deletion is still refused.
        let putBack = book.take([keys.assignment(web1): try sealed(web1, on: "host-b", epoch: 9, sequence: 25)], keys: keys, trust: trust, whole: false)
        #expect(putBack[keys.assignment(web1)] != nil && book.accepted[web1] == nil)
        _ = book.take([:], keys: keys, trust: trust, whole: true)
        #expect(book.accepted.isEmpty)
    }
}

@Suite struct LeaseSettingsTests {
    /// The defaults hold for every TTL; settings where one lost renewal and its retry end after
    /// the fence point, or whose margin leaves no time to fence, are refused with the reason.
    @Test func settingsThatCannotHoldAreRefused() {
        for ttl in [2, 3, 5, 10, 60, 3600] {
            let settings = LeaseSettings(ttl: ttl)
            #expect(settings.problem == nil, "TTL \(ttl): \(settings.problem ?? "")")
            #expect(settings.renewalInterval + 2 * settings.renewalTimeout < Double(ttl) - settings.fenceMargin)
        }
        #expect(LeaseSettings(ttl: 3).fenceMargin == 0.5)
        #expect(LeaseSettings(ttl: 3).renewalTimeout == 0.5)
        #expect(LeaseSettings(ttl: 2, renewalTimeout: 1, fenceMargin: nil).problem?.contains("one lost renewal") == true)
        #expect(LeaseSettings(ttl: 10, renewalTimeout: nil, fenceMargin: 0.1).problem?.contains("no time to demote") == true)
        #expect(LeaseSettings(ttl: 3, renewalTimeout: nil, fenceMargin: 2.5).problem?.contains("before the first renewal") == true)
        #expect(LeaseSettings(ttl: 3, renewalTimeout: .nan, fenceMargin: nil).problem != nil)
        #expect(LeaseSettings(ttl: 3, renewalTimeout: nil, fenceMargin: .infinity).problem != nil)
        #expect(LeaseSettings(ttl: 1).problem != nil)
    }
}
