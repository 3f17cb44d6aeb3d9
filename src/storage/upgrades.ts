/**
 * D1 `upgrades`: when a deployment was upgraded past a change that needs a window of care
 * (migrations/0010_core_v3.sql). Core v3: a deployment that held calls before it records `core_v3`.
 */
export async function upgradedAt(db: D1Database, name: "core_v3"): Promise<number | null> {
  const row = await db.prepare("SELECT at FROM upgrades WHERE name = ?").bind(name).first<{ at: number }>();
  return row?.at ?? null;
}
