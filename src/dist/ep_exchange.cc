// ep_exchange: pack the plan's rows by destination rank, all-to-all counts and rows, regroup the
// received rows expert-major (a stable counting sort over local experts), compute, send the
// results back along the reversed layouts and scatter them into the plan's row order.
#include "dist/ep_exchange.h"

#include <cstring>

#include "runtime/thread_pool.h"
#include "runtime/timer.h"
#include "util/check.h"

namespace moe::dist {

int64_t ep_bytes_sent(int n_rank, int64_t d_model, int64_t rows_sent, int64_t rows_received) {
  const int64_t row_bytes = 4 * d_model;
  return 8 * int64_t(n_rank - 1) + rows_sent * (row_bytes + 8) + rows_received * row_bytes;
}

namespace {

// Rows leave in destination order, inside one destination in its experts' increasing order.
// send_row[p] = the plan row sent at position p.
std::vector<int64_t> send_order(const ExpertPlacement& placement, const RoutingPlan& plan,
                                std::vector<int32_t>* send_row) {
  std::vector<int64_t> counts(static_cast<size_t>(placement.n_rank()), 0);
  send_row->resize(static_cast<size_t>(plan.n_rows()));  // [n_rows]
  int64_t p = 0;
  for (int d = 0; d < placement.n_rank(); ++d) {
    for (int e : placement.experts_of(d)) {
      for (int64_t r = plan.expert_offsets[size_t(e)]; r < plan.expert_offsets[size_t(e) + 1]; ++r)
        (*send_row)[size_t(p++)] = int32_t(r);
      counts[size_t(d)] += plan.expert_counts[size_t(e)];
    }
  }
  MOE_CHECK(p == plan.n_rows());
  return counts;
}

// Bytes a layout moves to or from ranks other than `me` (what really crosses between processes).
int64_t remote_bytes(const VLayout& layout, int me, int64_t elem_bytes) {
  int64_t n = 0;
  for (size_t r = 0; r < layout.counts.size(); ++r)
    if (int(r) != me) n += layout.counts[r] * elem_bytes;
  return n;
}

void copy_rows(int64_t n, int64_t d, const std::function<void(int64_t, float*&, const float*&)>& where) {
  thread_pool().parallel_for(n, [&](int64_t p0, int64_t p1, int) {
    for (int64_t p = p0; p < p1; ++p) {
      float* dst = nullptr;
      const float* src = nullptr;
      where(p, dst, src);
      std::memcpy(dst, src, sizeof(float) * size_t(d));
    }
  });
}

// Regroups received rows (source-major) into the expert-major batch; perm[p] = batch row of p.
void regroup(const ExpertPlacement& placement, int me, const VLayout& recv_layout, const std::vector<float>& recv_x,
             const std::vector<int32_t>& recv_meta, EpLocalBatch* batch, std::vector<int64_t>* perm) {
  const int64_t n = recv_layout.total(), D = batch->d_model;
  batch->experts = placement.experts_of(me);
  const size_t n_local = batch->experts.size();
  batch->offsets.assign(n_local + 1, 0);
  for (int64_t p = 0; p < n; ++p) {
    const int32_t e = recv_meta[size_t(2 * p)];
    MOE_CHECK_MSG(e >= 0 && e < placement.n_expert() && placement.owner(e) == me, "row sent to the wrong rank");
    ++batch->offsets[size_t(placement.local_index(e)) + 1];
  }
  for (size_t j = 0; j < n_local; ++j) batch->offsets[j + 1] += batch->offsets[j];
  std::vector<int64_t> cursor(batch->offsets.begin(), batch->offsets.end() - 1);
  perm->resize(size_t(n));               // [n_recv]
  batch->x.resize(size_t(n * D));        // [n_recv, D]
  batch->expert_ids.resize(size_t(n));   // [n_recv]
  batch->weights.resize(size_t(n));      // [n_recv]
  batch->source_rank.resize(size_t(n));  // [n_recv]
  int source = 0;
  for (int64_t p = 0; p < n; ++p) {
    while (p >= recv_layout.displs[size_t(source)] + recv_layout.counts[size_t(source)]) ++source;
    const int32_t e = recv_meta[size_t(2 * p)];
    const int64_t b = cursor[size_t(placement.local_index(e))]++;
    (*perm)[size_t(p)] = b;
    batch->expert_ids[size_t(b)] = e;
    std::memcpy(&batch->weights[size_t(b)], &recv_meta[size_t(2 * p + 1)], sizeof(float));
    batch->source_rank[size_t(b)] = source;
  }
  copy_rows(n, D, [&](int64_t p, float*& dst, const float*& src) {
    dst = batch->x.data() + (*perm)[size_t(p)] * D;
    src = recv_x.data() + p * D;
  });
}

// Packs the plan's rows in send order (send_order) with their expert id and weight bits; returns the
// rows for each destination rank.
std::vector<int64_t> pack_for_send(const ExpertPlacement& placement, const EpExchangeArgs& a, EpExchangeWorkspace& ws) {
  const RoutingPlan& plan = *a.plan;
  const int64_t D = a.d_model, n_rows = plan.n_rows();
  std::vector<int32_t>& send_row = ws.send_row;
  std::vector<int64_t> send_counts = send_order(placement, plan, &send_row);
  std::vector<float>& send_x = ws.send_x;
  send_x.resize(size_t(n_rows * D));  // [n_rows, D] in send order
  std::vector<int32_t>& send_meta = ws.send_meta;
  send_meta.resize(size_t(n_rows * 2));  // [n_rows, 2] expert id, weight bits
  copy_rows(n_rows, D, [&](int64_t p, float*& dst, const float*& src) {
    const int32_t slot = plan.row_to_slot[size_t(send_row[size_t(p)])];
    dst = send_x.data() + p * D;
    src = a.x + (slot / plan.top_k) * D;
  });
  for (int64_t p = 0; p < n_rows; ++p) {
    const int32_t slot = plan.row_to_slot[size_t(send_row[size_t(p)])];
    send_meta[size_t(2 * p)] = plan.expert_ids[size_t(slot)];
    std::memcpy(&send_meta[size_t(2 * p + 1)], &plan.weights[size_t(slot)], sizeof(float));
  }
  return send_counts;
}

// The layouts of one exchange: rows to each rank in send order, rows from each rank as received.
struct ExchangeLayouts {
  std::vector<int64_t> recv_counts;
  VLayout send, recv;
};

// All-to-all of the counts, then of the packed rows and their metadata into ws.recv_x / ws.recv_meta.
ExchangeLayouts send_rows(Comm& comm, const std::vector<int64_t>& send_counts, int64_t D, EpExchangeWorkspace& ws) {
  ExchangeLayouts l;
  l.recv_counts.resize(send_counts.size());
  comm.all_to_all_counts(send_counts.data(), l.recv_counts.data());
  l.send = VLayout::packed(send_counts);
  l.recv = VLayout::packed(l.recv_counts);
  const int64_t n_recv = l.recv.total();
  ws.recv_x.resize(size_t(n_recv * D));     // [n_recv, D] source-major
  ws.recv_meta.resize(size_t(n_recv * 2));  // [n_recv, 2]
  comm.all_to_all_v_f32(ws.send_x.data(), l.send, ws.recv_x.data(), l.recv, D);
  comm.all_to_all_v_i32(ws.send_meta.data(), l.send, ws.recv_meta.data(), l.recv, 2);
  return l;
}

// Bytes that crossed between ranks, measured from the layouts handed to the collectives: counts,
// rows + ids/weights, results.
void count_bytes(const ExchangeLayouts& l, int me, int n_rank, int64_t D, EpExchangeStats& st) {
  const int64_t count_bytes = 8 * int64_t(n_rank - 1), row_bytes = 4 * D;
  st.bytes_sent = count_bytes + remote_bytes(l.send, me, row_bytes + 8) + remote_bytes(l.recv, me, row_bytes);
  st.bytes_received = count_bytes + remote_bytes(l.recv, me, row_bytes + 8) + remote_bytes(l.send, me, row_bytes);
}

}  // namespace

void ep_exchange(Comm& comm, const ExpertPlacement& placement, const EpExchangeArgs& a, EpExchangeStats* stats,
                 EpExchangeWorkspace* workspace) {
  EpExchangeWorkspace local;
  EpExchangeWorkspace& ws = workspace ? *workspace : local;
  const RoutingPlan& plan = *a.plan;
  const int64_t D = a.d_model, n_rows = plan.n_rows();
  const int me = comm.rank();
  MOE_CHECK(placement.n_rank() == comm.size() && placement.n_expert() == plan.n_expert && D > 0);
  EpExchangeStats st;
  Timer timer;

  const std::vector<int64_t> send_counts = pack_for_send(placement, a, ws);
  st.pack_ms += timer.ms();

  timer.reset();
  const ExchangeLayouts layouts = send_rows(comm, send_counts, D, ws);
  const int64_t n_recv = layouts.recv.total();
  st.comm_ms += timer.ms();

  timer.reset();
  EpLocalBatch& batch = ws.batch;
  batch.d_model = D;
  std::vector<int64_t>& perm = ws.perm;
  regroup(placement, me, layouts.recv, ws.recv_x, ws.recv_meta, &batch, &perm);
  st.pack_ms += timer.ms();

  timer.reset();
  std::vector<float>& y_batch = ws.y_batch;
  y_batch.resize(size_t(n_recv * D));  // [n_recv, D] expert-major
  if (a.compute) a.compute(batch, y_batch.data());
  st.compute_ms += timer.ms();

  timer.reset();
  std::vector<float>& y_back = ws.recv_x;  // reuse: results in the order the rows arrived
  copy_rows(n_recv, D, [&](int64_t p, float*& dst, const float*& src) {
    dst = y_back.data() + p * D;
    src = y_batch.data() + perm[size_t(p)] * D;
  });
  st.pack_ms += timer.ms();

  timer.reset();
  std::vector<float>& y_sent = ws.send_x;  // reuse: results in send order
  comm.all_to_all_v_f32(y_back.data(), layouts.recv, y_sent.data(), layouts.send, D);
  st.comm_ms += timer.ms();

  timer.reset();
  const std::vector<int32_t>& send_row = ws.send_row;
  copy_rows(n_rows, D, [&](int64_t p, float*& dst, const float*& src) {
    dst = a.y_rows + int64_t(send_row[size_t(p)]) * D;
    src = y_sent.data() + p * D;
  });
  st.pack_ms += timer.ms();

  st.rows_local = send_counts[size_t(me)];
  st.rows_sent = n_rows - st.rows_local;
  st.rows_received = n_recv - layouts.recv_counts[size_t(me)];
  count_bytes(layouts, me, comm.size(), D, st);
  if (stats) *stats = st;
}

}  // namespace moe::dist
