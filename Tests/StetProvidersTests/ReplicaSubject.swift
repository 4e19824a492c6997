import Foundation
import StetCore
import StetProviders
import StetState
import StetTesting

/// The host's replicas: real processes in their own sessions, records in a real state directory.
final class ReplicaSubject: ConformanceSubject {
    let folder = TemporaryDirectory("stet-conformance-replicas")
    let name = uniqueName("svc")
    let replicas: ReplicaProvider

    init() {
        replicas = ReplicaProvider(store: FileStateStore(root: folder.file(".stet")), baseDirectory: folder.path)
    }

    var provider: any Provider { replicas }
    var caches: [String] { [] }

    /// `replicas` of a service that sleeps, at spec `version`, with a health check that passes.
    static func release(_ name: String, replicas: Int, version: String, command: [String] = ["/bin/sleep", "600"]) -> DesiredState {
        var desired = DesiredState()
        desired.services[name] = Service(
            metadata: Metadata(name: name), replicas: replicas,
            run: Service.Run(command: command, env: ["VERSION": version], stopTimeout: .seconds(5)),
            health: Service.Health(check: .exec(command: ["/bin/true"]), interval: .seconds(1), timeout: .seconds(5)))
        return desired
    }

    var releases: [DesiredState] {
        [Self.release(name, replicas: 2, version: "1"), Self.release(name, replicas: 1, version: "2"), DesiredState()]
    }

    func world() -> World { World.of(folder.path) }

    /// A command that does not exist.
    func failing() throws -> FailingRelease {
        FailingRelease(
            desired: Self.release(name, replicas: 1, version: "1", command: [folder.file("no-such-program")]),
            cause: "No such file or directory")
    }

    func tearDown() {
        for (service, records) in (try? replicas.records()) ?? [:] {
            for index in records.keys { _ = try? replicas.stop(service, index, timeout: 5) }
        }
    }

    deinit { tearDown() }
}
