"""The probe processor served by three worker processes."""

from app import ProbeProcessor

if __name__ == "__main__":
    ProbeProcessor(worker_threads=2, worker_processes=3).run()
