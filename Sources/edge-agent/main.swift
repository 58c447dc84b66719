import Foundation
print("edge-agent")
