// The quill row of logbraid-bench: a child process for the C++ logger quill
// (github.com/odygrd/quill), speaking the protocol of `logbraid-bench child`
// (bench/src/child.rs) so the driver runs, checks and reports it like the
// Rust peers.
//
//   quill-peer [child] --lib quill --scenario latency|throughput|disabled
//              --threads N --per-thread N --warmup N --dir DIR
//
// It does the work of child.rs (the same scenarios, counts, bursts, pauses,
// barriers and clocks), times calls with the stopwatch of timer.rs (fenced
// rdtsc, calibrated against the steady clock, the median cost of an empty
// start/stop pair subtracted), keeps latencies in a histogram laid out as
// hdrhistogram's `Histogram<u64>` with 3 significant digits (so percentiles,
// max and mean are computed as that crate computes them), and prints one line
// `LOGBRAID-BENCH-RESULT {json}` with the fields of `ChildReport`.
//
// quill is not part of this repository: bench/cpp/build compiles this file
// against a quill include directory given at build time.

#include <quill/Backend.h>
#include <quill/Frontend.h>
#include <quill/LogMacros.h>
#include <quill/Logger.h>
#include <quill/sinks/FileSink.h>

#include <x86intrin.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace
{

// The constants of child.rs.
constexpr char const* MARKER = "LOGBRAID-BENCH-RESULT ";
constexpr uint64_t BURST = 20;
constexpr auto PAUSE = std::chrono::microseconds{100};
constexpr auto SETTLE = std::chrono::milliseconds{200};
constexpr size_t DISABLED_REPS = 5;
constexpr auto POLL_LIMIT = std::chrono::seconds{60};
constexpr char const* FILE_NAME = "bench.log";
constexpr char const* LIB = "quill";

using Clock = std::chrono::steady_clock;

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

uint64_t nanos(Clock::duration d)
{
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

uint64_t sat_sub(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

// ---------------------------------------------------------------------------
// The stopwatch of timer.rs.

// `lfence; rdtsc; lfence`: the timed code can start neither before the read
// nor be overtaken by it.
inline __attribute__((always_inline)) uint64_t timer_start()
{
  asm volatile("" ::: "memory");
  _mm_lfence();
  uint64_t const t = __rdtsc();
  _mm_lfence();
  asm volatile("" ::: "memory");
  return t;
}

// `rdtscp; lfence`: the read waits for the timed code, and nothing after it
// starts before it.
inline __attribute__((always_inline)) uint64_t timer_stop()
{
  asm volatile("" ::: "memory");
  unsigned aux = 0;
  uint64_t const t = __rdtscp(&aux);
  _mm_lfence();
  asm volatile("" ::: "memory");
  return t;
}

struct Calibration
{
  double ticks_per_ns = 0;
  uint64_t overhead_ticks = 0;

  // The rate over `span` against the steady clock, and the overhead as the
  // median of 100,000 empty start/stop pairs.
  static Calibration measure(std::chrono::milliseconds span)
  {
    std::ifstream cpuinfo{"/proc/cpuinfo"};
    std::string const info{std::istreambuf_iterator<char>{cpuinfo}, std::istreambuf_iterator<char>{}};
    if (!info.empty() && info.find(" rdtscp") == std::string::npos)
    {
      throw std::runtime_error{"this CPU has no rdtscp instruction"};
    }
    auto const t0 = Clock::now();
    uint64_t const c0 = timer_start();
    while (Clock::now() - t0 < span)
    {
      _mm_pause();
    }
    uint64_t const c1 = timer_stop();
    double const ns = static_cast<double>(nanos(Clock::now() - t0));

    Calibration cal;
    cal.ticks_per_ns = static_cast<double>(c1 - c0) / ns;
    std::vector<uint64_t> pairs(100'000);
    for (auto& p : pairs)
    {
      uint64_t const a = timer_start();
      uint64_t const b = timer_stop();
      p = sat_sub(b, a);
    }
    std::sort(pairs.begin(), pairs.end());
    cal.overhead_ticks = pairs[pairs.size() / 2];
    return cal;
  }

  // A timed interval in nanoseconds, the overhead taken out.
  uint64_t ns(uint64_t start, uint64_t stop) const
  {
    uint64_t const ticks = sat_sub(sat_sub(stop, start), overhead_ticks);
    return static_cast<uint64_t>(std::round(static_cast<double>(ticks) / ticks_per_ns));
  }

  double overhead_ns() const { return static_cast<double>(overhead_ticks) / ticks_per_ns; }
};

// ---------------------------------------------------------------------------
// hdrhistogram's `Histogram<u64>` as child.rs makes it
// (`new_with_bounds(1, 100_000_000_000, 3)`): the same buckets, and
// `value_at_quantile`, `max` and `mean` computed as that crate does.

class Histogram
{
public:
  Histogram() : _counts(num_bins(buckets_to_cover(HIGH)), 0) {}

  // `saturating_record`.
  void record(uint64_t value)
  {
    size_t i = index_for(value);
    if (i >= _counts.size())
    {
      value = HIGH;
      i = index_for(value);
    }
    _counts[i] += 1;
    _max_value = std::max(_max_value, value);
    _total += 1;
  }

  void add(Histogram const& other)
  {
    for (size_t i = 0; i < _counts.size(); ++i)
    {
      _counts[i] += other._counts[i];
    }
    _max_value = std::max(_max_value, other._max_value);
    _total += other._total;
  }

  uint64_t len() const { return _total; }

  uint64_t max() const { return _max_value == 0 ? 0 : highest_equivalent(_max_value); }

  uint64_t value_at_quantile(double quantile) const
  {
    quantile = std::min(quantile, 1.0);
    uint64_t count_at_quantile =
      static_cast<uint64_t>(std::ceil(quantile * static_cast<double>(_total)));
    count_at_quantile = std::max<uint64_t>(count_at_quantile, 1);
    uint64_t seen = 0;
    for (size_t i = 0; i < _counts.size(); ++i)
    {
      seen += _counts[i];
      if (seen >= count_at_quantile)
      {
        uint64_t const v = value_for(i);
        return quantile == 0.0 ? lowest_equivalent(v) : highest_equivalent(v);
      }
    }
    return 0;
  }

  double mean() const
  {
    if (_total == 0)
    {
      return 0.0;
    }
    double total = 0.0;
    for (size_t i = 0; i < _counts.size(); ++i)
    {
      if (_counts[i] != 0)
      {
        uint64_t const v = highest_equivalent(value_for(i));
        total += static_cast<double>(median_equivalent(v)) * static_cast<double>(_counts[i]) /
          static_cast<double>(_total);
      }
    }
    return total;
  }

private:
  // Lowest discernible value 1: unit magnitude 0. Three significant digits:
  // single-unit resolution up to 2,000, so 2,048 sub-buckets.
  static constexpr uint64_t HIGH = 100'000'000'000;
  static constexpr unsigned SUB_BUCKET_COUNT_MAGNITUDE = 11;
  static constexpr unsigned SUB_BUCKET_HALF_COUNT_MAGNITUDE = SUB_BUCKET_COUNT_MAGNITUDE - 1;
  static constexpr uint64_t SUB_BUCKET_COUNT = uint64_t{1} << SUB_BUCKET_COUNT_MAGNITUDE;
  static constexpr uint64_t SUB_BUCKET_HALF_COUNT = SUB_BUCKET_COUNT / 2;
  static constexpr uint64_t SUB_BUCKET_MASK = SUB_BUCKET_COUNT - 1;
  static constexpr unsigned LEADING_ZERO_COUNT_BASE = 64 - SUB_BUCKET_COUNT_MAGNITUDE;

  static unsigned buckets_to_cover(uint64_t value)
  {
    uint64_t smallest_untrackable = SUB_BUCKET_COUNT;
    unsigned needed = 1;
    while (smallest_untrackable <= value)
    {
      if (smallest_untrackable > std::numeric_limits<uint64_t>::max() / 2)
      {
        return needed + 1;
      }
      smallest_untrackable <<= 1;
      needed += 1;
    }
    return needed;
  }

  static size_t num_bins(unsigned buckets) { return (buckets + 1) * SUB_BUCKET_HALF_COUNT; }

  static unsigned bucket_for(uint64_t value)
  {
    return LEADING_ZERO_COUNT_BASE - static_cast<unsigned>(__builtin_clzll(value | SUB_BUCKET_MASK));
  }

  static uint64_t sub_bucket_for(uint64_t value, unsigned bucket) { return value >> bucket; }

  static uint64_t value_from_loc(unsigned bucket, uint64_t sub_bucket) { return sub_bucket << bucket; }

  static size_t index_for(uint64_t value)
  {
    unsigned const bucket = bucket_for(value);
    uint64_t const sub = sub_bucket_for(value, bucket);
    uint64_t const base = uint64_t{bucket + 1} << SUB_BUCKET_HALF_COUNT_MAGNITUDE;
    return static_cast<size_t>(base + sub - SUB_BUCKET_HALF_COUNT);
  }

  static uint64_t value_for(size_t index)
  {
    int64_t bucket = static_cast<int64_t>(index >> SUB_BUCKET_HALF_COUNT_MAGNITUDE) - 1;
    uint64_t sub = (index & (SUB_BUCKET_HALF_COUNT - 1)) + SUB_BUCKET_HALF_COUNT;
    if (bucket < 0)
    {
      sub -= SUB_BUCKET_HALF_COUNT;
      bucket = 0;
    }
    return value_from_loc(static_cast<unsigned>(bucket), sub);
  }

  static uint64_t lowest_equivalent(uint64_t value)
  {
    unsigned const bucket = bucket_for(value);
    return value_from_loc(bucket, sub_bucket_for(value, bucket));
  }

  static uint64_t equivalent_range(uint64_t value) { return uint64_t{1} << bucket_for(value); }

  static uint64_t highest_equivalent(uint64_t value)
  {
    if (value == std::numeric_limits<uint64_t>::max())
    {
      return value;
    }
    return lowest_equivalent(value) + equivalent_range(value) - 1;
  }

  static uint64_t median_equivalent(uint64_t value)
  {
    return lowest_equivalent(value) + (equivalent_range(value) >> 1);
  }

  std::vector<uint64_t> _counts;
  uint64_t _max_value = 0;
  uint64_t _total = 0;
};

// ---------------------------------------------------------------------------
// Process facts, as sys.rs reads them.

// `VmHWM` from /proc/self/status; `ru_maxrss` where that is missing.
uint64_t peak_rss_kib()
{
  std::ifstream status{"/proc/self/status"};
  std::string line;
  while (std::getline(status, line))
  {
    if (line.rfind("VmHWM:", 0) == 0)
    {
      return std::strtoull(line.c_str() + 6, nullptr, 10);
    }
  }
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0)
  {
    return 0;
  }
  return static_cast<uint64_t>(std::max<long>(usage.ru_maxrss, 0));
}

// `std::hint::black_box` as rustc compiles it: the value is put in memory and
// its address handed to an empty asm block that may read and write memory.
template <typename T>
inline __attribute__((always_inline)) T black_box(T value)
{
  asm volatile("" : : "r"(&value) : "memory");
  return value;
}

// std::sync::Barrier: a mutex, a condition variable and a generation.
class Barrier
{
public:
  explicit Barrier(size_t n) : _n(n) {}

  void wait()
  {
    std::unique_lock<std::mutex> lock{_mutex};
    size_t const generation = _generation;
    if (++_count < _n)
    {
      _cv.wait(lock, [&] { return generation != _generation; });
    }
    else
    {
      _count = 0;
      _generation += 1;
      _cv.notify_all();
    }
  }

private:
  std::mutex _mutex;
  std::condition_variable _cv;
  size_t _n;
  size_t _count = 0;
  size_t _generation = 0;
};

// ---------------------------------------------------------------------------
// The child's command line (child.rs `ChildArgs`).

enum class Scenario
{
  Latency,
  Throughput,
  Disabled
};

struct Args
{
  std::string lib;
  Scenario scenario = Scenario::Latency;
  std::string scenario_name;
  uint64_t threads = 0;
  uint64_t per_thread = 0;
  uint64_t warmup = 0;
  std::string dir;
};

uint64_t parse_count(std::string const& flag, std::string const& v)
{
  if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos)
  {
    throw std::runtime_error{"invalid value '" + v + "' for '" + flag + "'"};
  }
  return std::strtoull(v.c_str(), nullptr, 10);
}

Args parse_args(int argc, char** argv)
{
  Args a;
  bool have[6] = {};
  int i = 1;
  if (i < argc && std::strcmp(argv[i], "child") == 0)
  {
    ++i;
  }
  for (; i < argc; ++i)
  {
    std::string flag = argv[i];
    std::string value;
    auto const eq = flag.find('=');
    if (eq != std::string::npos)
    {
      value = flag.substr(eq + 1);
      flag.resize(eq);
    }
    else if (i + 1 < argc)
    {
      value = argv[++i];
    }
    else
    {
      throw std::runtime_error{"a value is required for '" + flag + "'"};
    }
    if (flag == "--lib")
    {
      a.lib = value;
      have[0] = true;
    }
    else if (flag == "--scenario")
    {
      if (value == "latency")
        a.scenario = Scenario::Latency;
      else if (value == "throughput")
        a.scenario = Scenario::Throughput;
      else if (value == "disabled")
        a.scenario = Scenario::Disabled;
      else
        throw std::runtime_error{"invalid value '" + value + "' for '--scenario'"};
      a.scenario_name = value;
      have[1] = true;
    }
    else if (flag == "--threads")
    {
      a.threads = parse_count(flag, value);
      have[2] = true;
    }
    else if (flag == "--per-thread")
    {
      a.per_thread = parse_count(flag, value);
      have[3] = true;
    }
    else if (flag == "--warmup")
    {
      a.warmup = parse_count(flag, value);
      have[4] = true;
    }
    else if (flag == "--dir")
    {
      a.dir = value;
      have[5] = true;
    }
    else
    {
      throw std::runtime_error{"unexpected argument '" + flag + "'"};
    }
  }
  char const* names[6] = {"--lib", "--scenario", "--threads", "--per-thread", "--warmup", "--dir"};
  for (int k = 0; k < 6; ++k)
  {
    if (!have[k])
    {
      throw std::runtime_error{std::string{"the argument '"} + names[k] + "' is required"};
    }
  }
  if (a.lib != LIB)
  {
    throw std::runtime_error{"unknown library " + a.lib + " (this program runs only quill)"};
  }
  return a;
}

// ---------------------------------------------------------------------------
// quill, set up as bench/README.md describes.

quill::Logger* g_logger = nullptr;

void quill_init(std::string const& dir)
{
  // The backend thread, started before anything is timed. Default options:
  // it formats and writes on its own thread and sleeps 100 µs when idle.
  quill::Backend::start(quill::BackendOptions{});

  auto sink = quill::Frontend::create_or_get_sink<quill::FileSink>(
    dir + "/" + FILE_NAME,
    []()
    {
      quill::FileSinkConfig cfg;
      cfg.set_open_mode('w');
      return cfg;
    }(),
    quill::FileEventNotifier{});

  // The default clock source (the TSC, converted on the backend thread).
  g_logger = quill::Frontend::create_or_get_logger(
    "bench", std::move(sink),
    quill::PatternFormatterOptions{"%(time) %(log_level) [%(thread_id)/%(thread_name)] %(logger): %(message)",
                                   "%Y-%m-%dT%H:%M:%S.%QusZ", quill::Timezone::GmtTime, false});
  g_logger->set_log_level(quill::LogLevel::Info);

  // The main thread's queue, used by `flush_log`.
  quill::Frontend::preallocate();

  // The backend converts TSC stamps with a clock it calibrates on the first
  // TSC-stamped event it reads (sampling the counter for 30 to 150 ms).
  // quill's own benchmarks log a first message and flush before timing; a
  // flush is such an event and writes no line, so the calibration is done
  // here, before anything is timed.
  g_logger->flush_log();
}

// Threads are named `bench-N`, as the Rust children name theirs; quill
// reads the name when it makes the thread's queue.
void name_thread(uint64_t t)
{
  std::string const name = "bench-" + std::to_string(t);
  pthread_setname_np(pthread_self(), name.c_str());
}

// Each logging thread, before its first call: the thread's queue made, as
// quill recommends (logbraid's rows call `logbraid::preallocate()`).
void thread_start() { quill::Frontend::preallocate(); }

// Flushes and stops; when this returns quill says the file is complete.
void quill_finish()
{
  g_logger->flush_log();
  quill::Backend::stop();
}

inline __attribute__((always_inline)) void log_info(uint64_t index, uint64_t ms)
{
  LOG_INFO(g_logger, "request {} served in {} ms", index, ms);
}

inline __attribute__((always_inline)) void log_debug(uint64_t index, uint64_t ms)
{
  LOG_DEBUG(g_logger, "request {} served in {} ms", index, ms);
}

// ---------------------------------------------------------------------------
// The scenarios of child.rs.

uint64_t base(Args const& args, uint64_t t) { return t * (args.warmup + args.per_thread); }

Histogram latency(Args const& args, Calibration cal)
{
  Barrier barrier{static_cast<size_t>(args.threads)};
  uint64_t const warmup = args.warmup;
  uint64_t const total = args.warmup + args.per_thread;
  std::vector<Histogram> hists(args.threads);
  std::vector<std::thread> threads;
  for (uint64_t t = 0; t < args.threads; ++t)
  {
    threads.emplace_back(
      [&, t]()
      {
        Histogram hist;
        uint64_t const b = base(args, t);
        name_thread(t);
        thread_start();
        barrier.wait();
        uint64_t k = 0;
        while (k < total)
        {
          uint64_t const end = std::min(k + BURST, total);
          while (k < end)
          {
            uint64_t const index = b + k;
            uint64_t const ms = index % 1000;
            uint64_t const a = timer_start();
            log_info(index, ms);
            uint64_t const z = timer_stop();
            if (k >= warmup)
            {
              hist.record(cal.ns(a, z));
            }
            k += 1;
          }
          std::this_thread::sleep_for(PAUSE);
        }
        hists[t] = std::move(hist);
      });
  }
  Histogram all;
  for (uint64_t t = 0; t < args.threads; ++t)
  {
    threads[t].join();
    all.add(hists[t]);
  }
  return all;
}

// Counts the newlines of every file in a directory, reading only what was
// added since the last count.
class LineCounter
{
public:
  explicit LineCounter(std::string dir) : _dir(std::move(dir)), _buf(1 << 20) {}

  uint64_t count()
  {
    DIR* d = opendir(_dir.c_str());
    if (d == nullptr)
    {
      throw std::runtime_error{"cannot read " + _dir + ": " + std::strerror(errno)};
    }
    while (dirent* e = readdir(d))
    {
      std::string const path = _dir + "/" + e->d_name;
      struct stat st{};
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0 ||
          stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
      {
        continue;
      }
      auto it = std::find_if(_seen.begin(), _seen.end(), [&](Seen const& s) { return s.path == path; });
      if (it == _seen.end())
      {
        _seen.push_back(Seen{path, 0, 0});
        it = _seen.end() - 1;
      }
      int const fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0)
      {
        continue;
      }
      for (;;)
      {
        ssize_t const n = pread(fd, _buf.data(), _buf.size(), static_cast<off_t>(it->offset));
        if (n <= 0)
        {
          break;
        }
        it->offset += static_cast<uint64_t>(n);
        it->lines += static_cast<uint64_t>(std::count(_buf.data(), _buf.data() + n, '\n'));
      }
      close(fd);
    }
    closedir(d);
    uint64_t sum = 0;
    for (auto const& s : _seen)
    {
      sum += s.lines;
    }
    return sum;
  }

private:
  struct Seen
  {
    std::string path;
    uint64_t offset;
    uint64_t lines;
  };

  std::string _dir;
  std::vector<Seen> _seen;
  std::vector<char> _buf;
};

struct Throughput
{
  uint64_t records = 0;
  double elapsed_s = 0;
  double lines_per_s = 0;
  double finish_s = 0;
  double poll_s = 0;
  bool poll_gave_up = false;
};

Throughput throughput(Args const& args)
{
  size_t const n = static_cast<size_t>(args.threads) + 1;
  Barrier ready{n};
  Barrier go{n};
  uint64_t const warmup = args.warmup;
  uint64_t const total = args.warmup + args.per_thread;
  std::vector<std::thread> threads;
  for (uint64_t t = 0; t < args.threads; ++t)
  {
    threads.emplace_back(
      [&, t]()
      {
        uint64_t const b = base(args, t);
        name_thread(t);
        thread_start();
        for (uint64_t k = 0; k < warmup; ++k)
        {
          log_info(b + k, (b + k) % 1000);
        }
        ready.wait();
        go.wait();
        for (uint64_t k = warmup; k < total; ++k)
        {
          log_info(b + k, (b + k) % 1000);
        }
      });
  }
  ready.wait();
  std::this_thread::sleep_for(SETTLE);
  auto const start = Clock::now();
  go.wait();
  for (auto& th : threads)
  {
    th.join();
  }
  auto const finish_start = Clock::now();
  quill_finish();
  auto const finished = Clock::now();

  // quill says the file is complete; check by counting lines, and if it is
  // not, keep counting until it is (the clock keeps running).
  uint64_t const expected = args.threads * total;
  LineCounter counter{args.dir};
  auto end = finished;
  bool gave_up = false;
  if (counter.count() < expected)
  {
    for (;;)
    {
      if (counter.count() >= expected)
      {
        end = Clock::now();
        break;
      }
      if (Clock::now() - finished > POLL_LIMIT)
      {
        end = Clock::now();
        gave_up = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{1});
    }
  }
  Throughput r;
  r.records = args.threads * args.per_thread;
  r.elapsed_s = seconds(end - start);
  r.lines_per_s = static_cast<double>(r.records) / r.elapsed_s;
  r.finish_s = seconds(finished - finish_start);
  r.poll_s = seconds(end - finished);
  r.poll_gave_up = gave_up;
  return r;
}

struct Disabled
{
  uint64_t calls = 0;
  double ns_per_call = 0;
  double loop_ns_per_call = 0;
};

// The disabled scenario's thread. The counts are arguments, so the loops
// keep them in registers (the Rust child moves them into its closure).
void disabled_loops(uint64_t warmup, uint64_t calls, Clock::duration* with_call, Clock::duration* bare)
{
  name_thread(0);
  for (uint64_t i = 0; i < warmup; ++i)
  {
    uint64_t const index = black_box(i);
    uint64_t const ms = black_box(i % 1000);
    log_debug(index, ms);
  }
  std::vector<Clock::duration> with;
  std::vector<Clock::duration> without;
  for (size_t r = 0; r < DISABLED_REPS; ++r)
  {
    auto t = Clock::now();
    for (uint64_t i = 0; i < calls; ++i)
    {
      uint64_t const index = black_box(i);
      uint64_t const ms = black_box(i % 1000);
      log_debug(index, ms);
    }
    with.push_back(Clock::now() - t);
    t = Clock::now();
    for (uint64_t i = 0; i < calls; ++i)
    {
      black_box(std::pair<uint64_t, uint64_t>{black_box(i), black_box(i % 1000)});
    }
    without.push_back(Clock::now() - t);
  }
  std::sort(with.begin(), with.end());
  std::sort(without.begin(), without.end());
  *with_call = with[DISABLED_REPS / 2];
  *bare = without[DISABLED_REPS / 2];
}

Disabled disabled(Args const& args)
{
  uint64_t const calls = args.per_thread;
  Clock::duration with_call{};
  Clock::duration bare{};
  std::thread th{disabled_loops, args.warmup, calls, &with_call, &bare};
  th.join();
  Disabled d;
  d.calls = calls;
  d.ns_per_call = static_cast<double>(nanos(with_call)) / static_cast<double>(calls);
  d.loop_ns_per_call = static_cast<double>(nanos(bare)) / static_cast<double>(calls);
  return d;
}

// ---------------------------------------------------------------------------
// The report line.

std::string number(double v)
{
  if (!std::isfinite(v))
  {
    throw std::runtime_error{"a figure is not a finite number"};
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  std::string s = buf;
  if (s.find_first_of(".eE") == std::string::npos)
  {
    s += ".0";
  }
  return s;
}

int run(Args const& args)
{
  uint64_t const rss_start_kib = peak_rss_kib();
  std::string latency_json = "null";
  std::string throughput_json = "null";
  std::string disabled_json = "null";
  switch (args.scenario)
  {
  case Scenario::Latency:
  {
    // Calibrate before quill starts its thread.
    Calibration const cal = Calibration::measure(std::chrono::milliseconds{200});
    quill_init(args.dir);
    Histogram const hist = latency(args, cal);
    quill_finish();
    latency_json = "{\"p50\":" + std::to_string(hist.value_at_quantile(0.50)) +
      ",\"p99\":" + std::to_string(hist.value_at_quantile(0.99)) +
      ",\"p999\":" + std::to_string(hist.value_at_quantile(0.999)) +
      ",\"max\":" + std::to_string(hist.max()) + ",\"mean\":" + number(hist.mean()) +
      ",\"samples\":" + std::to_string(hist.len()) + ",\"clock\":\"rdtsc\"" +
      ",\"ticks_per_ns\":" + number(cal.ticks_per_ns) +
      ",\"timer_overhead_ns\":" + number(cal.overhead_ns()) + "}";
    break;
  }
  case Scenario::Throughput:
  {
    quill_init(args.dir);
    Throughput const t = throughput(args);
    throughput_json = "{\"records\":" + std::to_string(t.records) +
      ",\"elapsed_s\":" + number(t.elapsed_s) + ",\"lines_per_s\":" + number(t.lines_per_s) +
      ",\"finish_s\":" + number(t.finish_s) + ",\"poll_s\":" + number(t.poll_s) +
      ",\"poll_gave_up\":" + (t.poll_gave_up ? "true" : "false") + "}";
    break;
  }
  case Scenario::Disabled:
  {
    quill_init(args.dir);
    Disabled const d = disabled(args);
    quill_finish();
    disabled_json = "{\"calls\":" + std::to_string(d.calls) +
      ",\"ns_per_call\":" + number(d.ns_per_call) +
      ",\"loop_ns_per_call\":" + number(d.loop_ns_per_call) + "}";
    break;
  }
  }
  uint64_t const rss_peak_kib = peak_rss_kib();
  std::string const line = std::string{MARKER} + "{\"lib\":\"" + LIB + "\",\"scenario\":\"" +
    args.scenario_name + "\",\"threads\":" + std::to_string(args.threads) +
    ",\"latency\":" + latency_json + ",\"throughput\":" + throughput_json +
    ",\"disabled\":" + disabled_json + ",\"rss_start_kib\":" + std::to_string(rss_start_kib) +
    ",\"rss_peak_kib\":" + std::to_string(rss_peak_kib) + ",\"self_stats\":null}\n";
  std::fputs(line.c_str(), stdout);
  std::fflush(stdout);
  return 0;
}

} // namespace

int main(int argc, char** argv)
{
  try
  {
    Args const args = parse_args(argc, argv);
    if (args.threads == 0)
    {
      throw std::runtime_error{"--threads must be positive"};
    }
    return run(args);
  }
  catch (std::exception const& e)
  {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
