/** Backend workarounds (placeholder until the wasm kernel fixes land). */
export function installBackendFixes(_backend: string): string[] {
  return [];
}
