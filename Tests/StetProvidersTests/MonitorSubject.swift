import Foundation
import StetCore
import StetProviders
import StetState
import StetTesting

/// The monitor registry of `stet run`, in a real state directory.
final class MonitorSubject: ConformanceSubject {
    let folder = TemporaryDirectory("stet-conformance-monitors")
    let name = uniqueName("mon")
    let registry: MonitorRegistry

    init() { registry = MonitorRegistry(store: FileStateStore(root: folder.file(".stet"))) }

    var provider: any Provider { registry }
    var caches: [String] { [] }

    func release(interval: Int64) -> DesiredState {
        var desired = DesiredState()
        desired.monitors[name] = Monitor(
            metadata: Metadata(name: name), probe: .check(.tcp(address: "127.0.0.1:9", port: nil)), interval: .seconds(interval))
        return desired
    }

    var releases: [DesiredState] { [release(interval: 10), release(interval: 20), DesiredState()] }

    func world() -> World { World.of(folder.path) }

    /// The registry's file turns into a folder: the state directory is damaged.
    func failing() throws -> FailingRelease {
        FailingRelease(desired: releases[0], cause: "it is not a regular file") { [folder] in
            try FileManager.default.createDirectory(atPath: folder.file(".stet/\(MonitorRegistry.key)"), withIntermediateDirectories: true)
            chmod(folder.file(".stet"), 0o700)
        }
    }

    func tearDown() {}
}
