export async function runCostModel() {
  return null;
}
