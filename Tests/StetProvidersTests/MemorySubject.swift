import Foundation
import StetCore
import StetProviders

/// The in-memory provider of planner and engine tests: its world is its table.
final class MemorySubject: ConformanceSubject {
    let memory = MemoryProvider()
    let name = uniqueName("mem")

    init() { memory.delay = 0 }

    var provider: any Provider { memory }
    var caches: [String] { [] }

    var releases: [DesiredState] {
        [ReplicaSubject.release(name, replicas: 2, version: "1"), ReplicaSubject.release(name, replicas: 1, version: "2"), DesiredState()]
    }

    func world() -> World { World(memory: memory.state) }

    func failing() throws -> FailingRelease {
        memory.failing = ["Service/\(name)#0:start-replica"]
        return FailingRelease(desired: releases[0], cause: "failed as told")
    }

    func tearDown() {}
}
